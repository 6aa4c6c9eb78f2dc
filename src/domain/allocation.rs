//! The unique-amount allocation table: which payable amount on which wallet belongs to which
//! pending order, and which amounts rest in quarantine.
//!
//! A plain data structure with its invariant (an amount on a wallet has at most one holder); the
//! payment matcher actor owns the one instance, the database mirrors it under a unique index.

use std::collections::HashMap;

use super::Money;

/// Where an allocation row stands in the database (`allocations.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationState {
    /// Held by a pending order.
    Pending,
    /// Its order ended (paid, expired or cancelled); the amount stays out of reach until
    /// `quarantine_until`, so a payment of it still finds its order.
    Quarantined,
    /// Free again: the quarantine is over, or the order was never shown to anyone.
    Released,
}

string_enum!(AllocationState, "allocation state", {
    Pending => "pending",
    Quarantined => "quarantined",
    Released => "released",
});

/// Who holds an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A pending order; the amount is payable until `expires_at` (Unix ms).
    Pending { order_id: i64, expires_at: i64 },
    /// Its order ended (paid, expired or cancelled); not handed out again before `until`.
    Quarantined { order_id: i64, until: i64 },
    /// Another instance gave the amount out (the database said so when this instance tried to
    /// store it); the holder is not known here, so the amount stays out of reach until `until`
    /// and a transfer of it is looked up in the database.
    Elsewhere { until: i64 },
}

impl Hold {
    /// The order of ours that holds the amount (none when another instance holds it).
    pub fn order_id(self) -> Option<i64> {
        match self {
            Hold::Pending { order_id, .. } | Hold::Quarantined { order_id, .. } => Some(order_id),
            Hold::Elsewhere { .. } => None,
        }
    }
}

/// An amount on a wallet handed out for one order, payable until `expires_at` (Unix ms). The
/// table names wallets by index (`Allocation<usize>`); the matcher and the store by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation<W = String> {
    pub wallet: W,
    pub amount: Money,
    pub expires_at: i64,
}

impl<W> Allocation<W> {
    /// The same allocation with its wallet named another way.
    pub fn map_wallet<V>(self, f: impl FnOnce(W) -> V) -> Allocation<V> {
        Allocation {
            wallet: f(self.wallet),
            amount: self.amount,
            expires_at: self.expires_at,
        }
    }
}

/// All slots of every wallet are held; the first one frees at `retry_at` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all payable amounts are in use until {retry_at}")]
pub struct SlotsExhausted {
    pub retry_at: i64,
}

/// What a transfer of some amount to some wallet means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchResult {
    /// It pays this pending order (within its window).
    Order(i64),
    /// It pays an order whose window has passed (expired or quarantined amount).
    Late(i64),
    /// Another instance holds the amount: the database knows for which order.
    Elsewhere,
    /// No order ever held this amount (or its quarantine is over).
    NoMatch,
}

/// What ending an order's hold does with its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The order was paid, expired or was cancelled: the amount rests in quarantine, so a
    /// payment of it (a late one, or the same payment sent twice) is recognised as belonging
    /// to this order instead of paying someone else's.
    Quarantine,
    /// The order was never shown to anyone (its transaction failed): the amount is free at once.
    Free,
}

/// Rules of the table, from `payments.*` configuration.
#[derive(Debug, Clone, Copy)]
pub struct TableRules {
    pub step: Money,
    pub max_slots: u32,
    pub window_ms: i64,
    pub quarantine_ms: i64,
}

/// The table itself: `(wallet index, amount) -> hold`, with an index by order.
#[derive(Debug, Clone)]
pub struct AllocationTable {
    rules: TableRules,
    wallets: usize,
    holds: HashMap<(usize, i64), Hold>,
    by_order: HashMap<i64, (usize, i64)>,
    /// Holds of pending orders, kept as they change so reading it costs nothing.
    pending: usize,
}

fn is_pending(h: Option<&Hold>) -> bool {
    matches!(h, Some(Hold::Pending { .. }))
}

impl AllocationTable {
    pub fn new(rules: TableRules, wallets: usize) -> Self {
        AllocationTable {
            rules,
            wallets,
            holds: HashMap::new(),
            by_order: HashMap::new(),
            pending: 0,
        }
    }

    pub fn rules(&self) -> TableRules {
        self.rules
    }

    /// Live holds (pending and quarantined).
    pub fn len(&self) -> usize {
        self.holds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Holds of pending orders.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Puts back a hold read from the database (rebuild at start).
    pub fn restore(&mut self, wallet_index: usize, amount: Money, hold: Hold) {
        let key = (wallet_index, amount.micros());
        if is_pending(Some(&hold)) {
            self.pending += 1;
        }
        if let Some(old) = self.holds.insert(key, hold) {
            self.pending -= usize::from(is_pending(Some(&old)));
            if let Some(id) = old.order_id() {
                self.by_order.remove(&id);
            }
        }
        if let Some(id) = hold.order_id() {
            self.by_order.insert(id, key);
        }
    }

    /// Hands `order_id` the smallest free amount above `price`, trying wallets in order.
    /// An order that holds an amount already gets the same one back.
    pub fn allocate(
        &mut self,
        order_id: i64,
        price: Money,
        now: i64,
    ) -> Result<Allocation<usize>, SlotsExhausted> {
        if let Some(&(w, a)) = self.by_order.get(&order_id)
            && let Some(Hold::Pending { expires_at, .. }) = self.holds.get(&(w, a))
        {
            return Ok(Allocation {
                wallet: w,
                amount: Money::from_micros(a),
                expires_at: *expires_at,
            });
        }
        let step = self.rules.step.micros();
        let mut retry_at = i64::MAX;
        for wallet in 0..self.wallets {
            for k in 1..=i64::from(self.rules.max_slots) {
                let Some(amount) = price.micros().checked_add(k * step) else {
                    break;
                };
                let key = (wallet, amount);
                let free = match self.holds.get(&key) {
                    None => true,
                    Some(Hold::Quarantined { until, .. } | Hold::Elsewhere { until })
                        if *until <= now =>
                    {
                        true
                    }
                    Some(Hold::Quarantined { until, .. } | Hold::Elsewhere { until }) => {
                        retry_at = retry_at.min(*until);
                        false
                    }
                    Some(Hold::Pending { expires_at, .. }) => {
                        retry_at = retry_at.min(expires_at + self.rules.quarantine_ms);
                        false
                    }
                };
                if free {
                    let expires_at = now + self.rules.window_ms;
                    // only a finished quarantine can be replaced here
                    if let Some(old) = self.holds.insert(
                        key,
                        Hold::Pending {
                            order_id,
                            expires_at,
                        },
                    ) && let Some(id) = old.order_id()
                    {
                        self.by_order.remove(&id);
                    }
                    self.pending += 1;
                    self.by_order.insert(order_id, key);
                    return Ok(Allocation {
                        wallet,
                        amount: Money::from_micros(amount),
                        expires_at,
                    });
                }
            }
        }
        Err(SlotsExhausted {
            retry_at: if retry_at == i64::MAX { now } else { retry_at },
        })
    }

    /// Ends an order's hold: quarantined until `now + quarantine`, or freed at once.
    /// Returns whether the order held anything.
    pub fn release(&mut self, order_id: i64, release: Release, now: i64) -> bool {
        let Some(key) = self.by_order.get(&order_id).copied() else {
            return false;
        };
        self.pending -= usize::from(is_pending(self.holds.get(&key)));
        match release {
            Release::Free => {
                self.holds.remove(&key);
                self.by_order.remove(&order_id);
            }
            Release::Quarantine => {
                self.holds.insert(
                    key,
                    Hold::Quarantined {
                        order_id,
                        until: now + self.rules.quarantine_ms,
                    },
                );
            }
        }
        true
    }

    /// What a transfer of `amount` to wallet `wallet_index` at time `at` pays.
    pub fn match_transfer(&self, wallet_index: usize, amount: Money, at: i64) -> MatchResult {
        match self.holds.get(&(wallet_index, amount.micros())) {
            Some(Hold::Pending {
                order_id,
                expires_at,
            }) if at <= *expires_at => MatchResult::Order(*order_id),
            Some(Hold::Pending { order_id, .. }) => MatchResult::Late(*order_id),
            Some(Hold::Quarantined { order_id, until }) if at < *until => {
                MatchResult::Late(*order_id)
            }
            Some(Hold::Elsewhere { until }) if at < *until => MatchResult::Elsewhere,
            Some(Hold::Quarantined { .. } | Hold::Elsewhere { .. }) | None => MatchResult::NoMatch,
        }
    }

    /// Drops quarantines that are over; returns how many.
    pub fn purge(&mut self, now: i64) -> usize {
        let before = self.holds.len();
        let by_order = &mut self.by_order;
        self.holds.retain(|_, h| match h {
            Hold::Quarantined { until, order_id } if *until <= now => {
                by_order.remove(order_id);
                false
            }
            Hold::Elsewhere { until } => *until > now,
            _ => true,
        });
        before - self.holds.len()
    }

    pub fn hold_of(&self, order_id: i64) -> Option<(usize, Money, Hold)> {
        let key = self.by_order.get(&order_id)?;
        let hold = self.holds.get(key)?;
        Some((key.0, Money::from_micros(key.1), *hold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(wallets: usize, max_slots: u32) -> AllocationTable {
        AllocationTable::new(
            TableRules {
                step: Money::from_micros(1_000),
                max_slots,
                window_ms: 900_000,
                quarantine_ms: 1_800_000,
            },
            wallets,
        )
    }

    const PRICE: Money = Money::from_micros(10_000_000);

    #[test]
    fn smallest_free_offset_above_the_price() {
        let mut t = table(1, 999);
        let a = t.allocate(1, PRICE, 0).unwrap();
        let exp = a.expires_at;
        assert_eq!(a.amount.to_string(), "10.001000");
        assert_eq!(exp, 900_000);
        assert_eq!(
            t.allocate(2, PRICE, 0).unwrap().amount.to_string(),
            "10.002000"
        );
        t.release(1, Release::Free, 1);
        assert_eq!(
            t.allocate(3, PRICE, 1).unwrap().amount.to_string(),
            "10.001000"
        );
        // a paid amount rests like an expired one: a repeated payment stays with its order
        t.release(3, Release::Quarantine, 2);
        assert_eq!(
            t.allocate(4, PRICE, 3).unwrap().amount.to_string(),
            "10.003000"
        );
        assert_eq!(
            t.match_transfer(0, Money::from_micros(10_001_000), 4),
            MatchResult::Late(3)
        );
    }

    #[test]
    fn same_order_gets_its_amount_back() {
        let mut t = table(1, 10);
        let a = t.allocate(7, PRICE, 0).unwrap();
        assert_eq!(t.allocate(7, PRICE, 5).unwrap(), a);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pending(), 1);
        t.release(7, Release::Quarantine, 1);
        assert_eq!((t.len(), t.pending()), (1, 0));
        t.release(7, Release::Quarantine, 2);
        assert_eq!(
            (t.len(), t.pending()),
            (1, 0),
            "a second release changes nothing"
        );
    }

    #[test]
    fn next_wallet_then_busy_with_the_first_free_time() {
        let mut t = table(2, 2);
        let wallets: Vec<usize> = (1..=4)
            .map(|o| t.allocate(o, PRICE, 0).unwrap().wallet)
            .collect();
        assert_eq!(wallets, vec![0, 0, 1, 1]);
        let err = t.allocate(5, PRICE, 0).unwrap_err();
        assert_eq!(err.retry_at, 900_000 + 1_800_000);
        t.release(3, Release::Quarantine, 100);
        let err = t.allocate(5, PRICE, 200).unwrap_err();
        assert_eq!(err.retry_at, 100 + 1_800_000, "the quarantine frees first");
        let a = t.allocate(5, PRICE, 100 + 1_800_000).unwrap();
        assert_eq!((a.wallet, a.amount.to_string().as_str()), (1, "10.001000"));
    }

    #[test]
    fn quarantine_keeps_late_payers_away_from_new_orders() {
        let mut t = table(1, 999);
        let a = t.allocate(1, PRICE, 0).unwrap();
        t.release(1, Release::Quarantine, 900_000);
        let b = t.allocate(2, PRICE, 900_001).unwrap();
        assert_ne!(a.amount, b.amount, "a quarantined amount is not handed out");
        assert_eq!(t.match_transfer(0, a.amount, 900_500), MatchResult::Late(1));
        assert_eq!(
            t.match_transfer(0, b.amount, 900_500),
            MatchResult::Order(2)
        );
        assert_eq!(
            t.match_transfer(0, Money::from_micros(1), 0),
            MatchResult::NoMatch
        );
        assert_eq!(t.purge(900_000 + 1_800_000), 1);
        assert_eq!(
            t.match_transfer(0, a.amount, 2_800_000),
            MatchResult::NoMatch
        );
    }

    #[test]
    fn a_transfer_after_the_window_is_late() {
        let mut t = table(1, 9);
        let a = t.allocate(1, PRICE, 0).unwrap();
        let exp = a.expires_at;
        assert_eq!(t.match_transfer(0, a.amount, exp), MatchResult::Order(1));
        assert_eq!(t.match_transfer(0, a.amount, exp + 1), MatchResult::Late(1));
    }

    #[test]
    fn the_finest_step_uses_all_six_decimals() {
        let mut t = AllocationTable::new(
            TableRules {
                step: Money::from_micros(1),
                max_slots: 999_999,
                window_ms: 1,
                quarantine_ms: 1,
            },
            1,
        );
        let a = t.allocate(1, PRICE, 0).unwrap();
        assert_eq!(a.amount.to_string(), "10.000001");
    }

    #[test]
    fn an_amount_held_elsewhere_is_neither_handed_out_nor_matched_here() {
        let mut t = table(1, 2);
        t.restore(
            0,
            Money::from_micros(10_001_000),
            Hold::Elsewhere { until: 1_000 },
        );
        let a = t.allocate(1, PRICE, 0).unwrap();
        assert_eq!(
            a.amount.to_string(),
            "10.002000",
            "the held amount is skipped"
        );
        assert_eq!(
            t.match_transfer(0, Money::from_micros(10_001_000), 500),
            MatchResult::Elsewhere
        );
        assert_eq!(
            t.pending(),
            1,
            "a hold elsewhere is not one of our pending orders"
        );
        assert_eq!(t.purge(1_000), 1);
        assert_eq!(
            t.match_transfer(0, Money::from_micros(10_001_000), 1_500),
            MatchResult::NoMatch
        );
    }
}
