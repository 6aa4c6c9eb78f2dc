//! The unique-amount allocation table: which payable amount on which wallet belongs to which
//! pending order, and which amounts rest in quarantine.
//!
//! A plain data structure with its invariant (an amount on a wallet has at most one holder); the
//! payment matcher actor owns the one instance, the database mirrors it under a unique index.

use std::collections::HashMap;

use super::Money;

/// Who holds an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A pending order; the amount is payable until `expires_at` (Unix ms).
    Pending { order_id: i64, expires_at: i64 },
    /// Freed by expiry or cancellation; not handed out again before `until` (Unix ms).
    Quarantined { order_id: i64, until: i64 },
}

impl Hold {
    pub fn order_id(self) -> i64 {
        match self {
            Hold::Pending { order_id, .. } | Hold::Quarantined { order_id, .. } => order_id,
        }
    }
}

/// An amount handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    pub wallet_index: usize,
    pub amount: Money,
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
    /// No order ever held this amount (or its quarantine is over).
    NoMatch,
}

/// How an allocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// Paid: the amount rests in quarantine, so a second identical payment is recognised as
    /// belonging to this order (and credited) rather than paying someone else's.
    Paid,
    /// Expired or cancelled: the amount rests in quarantine.
    Expired,
    /// The order was never shown to anyone (its transaction failed): free at once.
    Abandoned,
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
            self.by_order.remove(&old.order_id());
        }
        self.by_order.insert(hold.order_id(), key);
    }

    /// Hands `order_id` the smallest free amount above `price`, trying wallets in order.
    /// An order that holds an amount already gets the same one back.
    pub fn allocate(
        &mut self,
        order_id: i64,
        price: Money,
        now: i64,
    ) -> Result<(Allocated, i64), SlotsExhausted> {
        if let Some(&(w, a)) = self.by_order.get(&order_id)
            && let Some(Hold::Pending { expires_at, .. }) = self.holds.get(&(w, a))
        {
            return Ok((
                Allocated {
                    wallet_index: w,
                    amount: Money::from_micros(a),
                },
                *expires_at,
            ));
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
                    Some(Hold::Quarantined { until, .. }) if *until <= now => true,
                    Some(Hold::Quarantined { until, .. }) => {
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
                    ) {
                        self.by_order.remove(&old.order_id());
                    }
                    self.pending += 1;
                    self.by_order.insert(order_id, key);
                    return Ok((
                        Allocated {
                            wallet_index: wallet,
                            amount: Money::from_micros(amount),
                        },
                        expires_at,
                    ));
                }
            }
        }
        Err(SlotsExhausted {
            retry_at: if retry_at == i64::MAX { now } else { retry_at },
        })
    }

    /// Ends an order's hold: freed at once, or quarantined until `now + quarantine`.
    /// Returns whether the order held anything.
    pub fn release(&mut self, order_id: i64, reason: ReleaseReason, now: i64) -> bool {
        let Some(key) = self.by_order.get(&order_id).copied() else {
            return false;
        };
        self.pending -= usize::from(is_pending(self.holds.get(&key)));
        match reason {
            ReleaseReason::Abandoned => {
                self.holds.remove(&key);
                self.by_order.remove(&order_id);
            }
            ReleaseReason::Paid | ReleaseReason::Expired => {
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
            Some(Hold::Quarantined { .. }) | None => MatchResult::NoMatch,
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
        let (a, exp) = t.allocate(1, PRICE, 0).unwrap();
        assert_eq!(a.amount.to_string(), "10.001000");
        assert_eq!(exp, 900_000);
        assert_eq!(
            t.allocate(2, PRICE, 0).unwrap().0.amount.to_string(),
            "10.002000"
        );
        t.release(1, ReleaseReason::Abandoned, 1);
        assert_eq!(
            t.allocate(3, PRICE, 1).unwrap().0.amount.to_string(),
            "10.001000"
        );
        // a paid amount rests like an expired one: a repeated payment stays with its order
        t.release(3, ReleaseReason::Paid, 2);
        assert_eq!(
            t.allocate(4, PRICE, 3).unwrap().0.amount.to_string(),
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
        t.release(7, ReleaseReason::Expired, 1);
        assert_eq!((t.len(), t.pending()), (1, 0));
        t.release(7, ReleaseReason::Expired, 2);
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
            .map(|o| t.allocate(o, PRICE, 0).unwrap().0.wallet_index)
            .collect();
        assert_eq!(wallets, vec![0, 0, 1, 1]);
        let err = t.allocate(5, PRICE, 0).unwrap_err();
        assert_eq!(err.retry_at, 900_000 + 1_800_000);
        t.release(3, ReleaseReason::Expired, 100);
        let err = t.allocate(5, PRICE, 200).unwrap_err();
        assert_eq!(err.retry_at, 100 + 1_800_000, "the quarantine frees first");
        let (a, _) = t.allocate(5, PRICE, 100 + 1_800_000).unwrap();
        assert_eq!(
            (a.wallet_index, a.amount.to_string().as_str()),
            (1, "10.001000")
        );
    }

    #[test]
    fn quarantine_keeps_late_payers_away_from_new_orders() {
        let mut t = table(1, 999);
        let (a, _) = t.allocate(1, PRICE, 0).unwrap();
        t.release(1, ReleaseReason::Expired, 900_000);
        let (b, _) = t.allocate(2, PRICE, 900_001).unwrap();
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
        let (a, exp) = t.allocate(1, PRICE, 0).unwrap();
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
        let (a, _) = t.allocate(1, PRICE, 0).unwrap();
        assert_eq!(a.amount.to_string(), "10.000001");
    }
}
