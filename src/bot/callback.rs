//! Inline-button payloads: short strings (Telegram allows 64 bytes) that name an action and its
//! arguments. Anything that does not parse is an expired or forged button and is refused.

use crate::config::Language;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Menu,
    Catalog {
        page: u32,
    },
    Category {
        id: i64,
        page: u32,
    },
    Product(i64),
    Buy(i64),
    Quantity {
        product: i64,
        qty: u32,
    },
    /// "Pay with Stars" on a product.
    BuyStars(i64),
    /// A quantity chosen to pay with Stars.
    StarsQuantity {
        product: i64,
        qty: u32,
    },
    Orders {
        page: u32,
    },
    Order(i64),
    Check(i64),
    CancelOrder(i64),
    PayFromBalance(i64),
    Profile,
    Balance,
    Topup,
    TopupAmount(i64),
    TopupCustom,
    Language,
    SetLanguage(Language),
    Help,
    Terms,
    Privacy,
    AgentApply,
}

impl Action {
    pub fn encode(self) -> String {
        match self {
            Action::Menu => "m".into(),
            Action::Catalog { page } => format!("c:{page}"),
            Action::Category { id, page } => format!("k:{id}:{page}"),
            Action::Product(id) => format!("p:{id}"),
            Action::Buy(id) => format!("b:{id}"),
            Action::Quantity { product, qty } => format!("q:{product}:{qty}"),
            Action::BuyStars(id) => format!("bs:{id}"),
            Action::StarsQuantity { product, qty } => format!("sq:{product}:{qty}"),
            Action::Orders { page } => format!("os:{page}"),
            Action::Order(id) => format!("o:{id}"),
            Action::Check(id) => format!("ck:{id}"),
            Action::CancelOrder(id) => format!("x:{id}"),
            Action::PayFromBalance(id) => format!("pb:{id}"),
            Action::Profile => "pr".into(),
            Action::Balance => "bl".into(),
            Action::Topup => "tu".into(),
            Action::TopupAmount(micros) => format!("ta:{micros}"),
            Action::TopupCustom => "tc".into(),
            Action::Language => "lg".into(),
            Action::SetLanguage(l) => format!("l:{}", l.code()),
            Action::Help => "h".into(),
            Action::Terms => "t".into(),
            Action::Privacy => "pv".into(),
            Action::AgentApply => "ag".into(),
        }
    }

    pub fn parse(data: &str) -> Option<Action> {
        if data.len() > 64 {
            return None;
        }
        let mut parts = data.split(':');
        let head = parts.next()?;
        let mut num = || -> Option<i64> { parts.next()?.parse::<i64>().ok().filter(|n| *n >= 0) };
        let action = match head {
            "m" => Action::Menu,
            "c" => Action::Catalog {
                page: u32::try_from(num()?).ok()?,
            },
            "k" => Action::Category {
                id: num()?,
                page: u32::try_from(num()?).ok()?,
            },
            "p" => Action::Product(num()?),
            "b" => Action::Buy(num()?),
            "q" => Action::Quantity {
                product: num()?,
                qty: u32::try_from(num()?)
                    .ok()
                    .filter(|q| (1..=100).contains(q))?,
            },
            "bs" => Action::BuyStars(num()?),
            "sq" => Action::StarsQuantity {
                product: num()?,
                qty: u32::try_from(num()?)
                    .ok()
                    .filter(|q| (1..=100).contains(q))?,
            },
            "os" => Action::Orders {
                page: u32::try_from(num()?).ok()?,
            },
            "o" => Action::Order(num()?),
            "ck" => Action::Check(num()?),
            "x" => Action::CancelOrder(num()?),
            "pb" => Action::PayFromBalance(num()?),
            "pr" => Action::Profile,
            "bl" => Action::Balance,
            "tu" => Action::Topup,
            "ta" => Action::TopupAmount(num()?),
            "tc" => Action::TopupCustom,
            "lg" => Action::Language,
            "l" => match parts.next()? {
                "en" => Action::SetLanguage(Language::En),
                "zh" => Action::SetLanguage(Language::Zh),
                _ => return None,
            },
            "h" => Action::Help,
            "t" => Action::Terms,
            "pv" => Action::Privacy,
            "ag" => Action::AgentApply,
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_within_64_bytes() {
        let all = [
            Action::Menu,
            Action::Catalog { page: 3 },
            Action::Category {
                id: i64::MAX,
                page: u32::MAX,
            },
            Action::Product(9),
            Action::Buy(9),
            Action::Quantity {
                product: 9,
                qty: 100,
            },
            Action::BuyStars(9),
            Action::StarsQuantity {
                product: i64::MAX,
                qty: 100,
            },
            Action::Orders { page: 0 },
            Action::Order(1),
            Action::Check(1),
            Action::CancelOrder(1),
            Action::PayFromBalance(1),
            Action::Profile,
            Action::Balance,
            Action::Topup,
            Action::TopupAmount(50_000_000),
            Action::TopupCustom,
            Action::Language,
            Action::SetLanguage(Language::Zh),
            Action::Help,
            Action::Terms,
            Action::Privacy,
            Action::AgentApply,
        ];
        for a in all {
            let data = a.encode();
            assert!(data.len() <= 64, "{data}");
            assert_eq!(Action::parse(&data), Some(a), "{data}");
        }
    }

    #[test]
    fn forged_or_broken_payloads_are_refused() {
        for bad in [
            "",
            "zz",
            "o:",
            "o:-1",
            "o:1:2",
            "q:1:0",
            "q:1:101",
            "sq:1:0",
            "bs:-2",
            "l:fr",
            "o:abc",
            "k:1",
            &"o:1".repeat(30),
        ] {
            assert_eq!(Action::parse(bad), None, "{bad}");
        }
    }
}
