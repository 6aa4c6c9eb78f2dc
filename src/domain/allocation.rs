//! The unique-amount allocation table: which payable amount on which wallet belongs to which
//! pending order, and which amounts rest in quarantine.
//!
//! A plain data structure with its invariant (an amount on a wallet has at most one holder); the
//! payment matcher actor owns the one instance, the database mirrors it under a unique index.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// The table itself: `(wallet index, amount) -> hold`, with an index by order and, per wallet
/// and price, a bitmap of the slots above that price, so finding the smallest free amount does
/// not get slower as a wallet fills.
#[derive(Debug, Clone)]
pub struct AllocationTable {
    rules: TableRules,
    wallets: usize,
    holds: HashMap<(usize, i64), Hold>,
    by_order: HashMap<i64, (usize, i64)>,
    /// Holds of pending orders, kept as they change so reading it costs nothing.
    pending: usize,
    /// One per wallet that amounts are handed out on.
    slots: Vec<WalletSlots>,
    /// Quarantines and holds elsewhere by the time they end: `(until, wallet, amount)`.
    timed: BTreeSet<(i64, usize, i64)>,
}

/// Which amounts of one wallet are held, and the bitmaps of the prices being sold.
#[derive(Debug, Clone, Default)]
struct WalletSlots {
    held: BTreeSet<i64>,
    /// `(price mod step, price) -> lane`: the lanes an amount falls in are one range.
    lanes: BTreeMap<(i64, i64), Lane>,
}

/// The slots of one price on one wallet: bit `k - 1` is set while `price + k * step` is held.
/// A lane is made from `WalletSlots::held` when its price is first sold, and dropped by
/// [`AllocationTable::purge`] once nothing in it is held.
#[derive(Debug, Clone)]
struct Lane {
    words: Vec<u64>,
    /// Bit `i` is set while `words[i]` is full.
    full: Vec<u64>,
    held: u32,
}

impl Lane {
    fn new(slots: u32) -> Lane {
        let n = (slots as usize).div_ceil(64);
        let mut words = vec![0u64; n];
        // the bits past the last slot count as held, so they are never offered
        let tail = slots as usize % 64;
        if tail != 0 {
            words[n - 1] = !0u64 << tail;
        }
        Lane {
            words,
            full: vec![0u64; n.div_ceil(64)],
            held: 0,
        }
    }

    fn set(&mut self, k: u32) {
        let (w, bit) = ((k - 1) as usize / 64, (k - 1) % 64);
        if self.words[w] & (1 << bit) == 0 {
            self.words[w] |= 1 << bit;
            self.held += 1;
            if self.words[w] == u64::MAX {
                self.full[w / 64] |= 1 << (w % 64);
            }
        }
    }

    fn clear(&mut self, k: u32) {
        let (w, bit) = ((k - 1) as usize / 64, (k - 1) % 64);
        if self.words[w] & (1 << bit) != 0 {
            self.words[w] &= !(1 << bit);
            self.held -= 1;
            self.full[w / 64] &= !(1 << (w % 64));
        }
    }

    /// The smallest free slot (1-based), reading one summary word per 4,096 slots and one
    /// slot word.
    fn first_free(&self) -> Option<u32> {
        let (j, f) = self
            .full
            .iter()
            .enumerate()
            .find(|(_, f)| **f != u64::MAX)?;
        let w = j * 64 + (!f).trailing_zeros() as usize;
        let word = self.words.get(w)?;
        Some((w * 64) as u32 + (!word).trailing_zeros() + 1)
    }
}

fn is_pending(h: Option<&Hold>) -> bool {
    matches!(h, Some(Hold::Pending { .. }))
}

impl Hold {
    /// When a quarantine or a hold elsewhere ends (a pending hold ends when it is released).
    fn until(self) -> Option<i64> {
        match self {
            Hold::Quarantined { until, .. } | Hold::Elsewhere { until } => Some(until),
            Hold::Pending { .. } => None,
        }
    }
}

impl AllocationTable {
    pub fn new(rules: TableRules, wallets: usize) -> Self {
        AllocationTable {
            rules,
            wallets,
            holds: HashMap::new(),
            by_order: HashMap::new(),
            pending: 0,
            slots: vec![WalletSlots::default(); wallets],
            timed: BTreeSet::new(),
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
        self.put((wallet_index, amount.micros()), hold);
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
        // a finished quarantine frees its slot: drop them all, so "no hold" means "free"
        self.expire(now);
        for wallet in 0..self.wallets {
            let Some(amount) = self.first_free(wallet, price.micros()) else {
                continue;
            };
            let expires_at = now + self.rules.window_ms;
            self.put(
                (wallet, amount),
                Hold::Pending {
                    order_id,
                    expires_at,
                },
            );
            return Ok(Allocation {
                wallet,
                amount: Money::from_micros(amount),
                expires_at,
            });
        }
        Err(SlotsExhausted {
            retry_at: self.first_freeing(price.micros()).unwrap_or(now),
        })
    }

    /// The smallest free amount above `price` on `wallet`.
    fn first_free(&mut self, wallet: usize, price: i64) -> Option<i64> {
        let (step, max) = (self.rules.step.micros(), self.rules.max_slots);
        let WalletSlots { held, lanes } = &mut self.slots[wallet];
        let lane = lanes
            .entry((price.rem_euclid(step), price))
            .or_insert_with(|| {
                let mut lane = Lane::new(max);
                let top = price.saturating_add(step.saturating_mul(i64::from(max)));
                for &a in held.range(price.saturating_add(1)..=top) {
                    if (a - price) % step == 0 {
                        lane.set(((a - price) / step) as u32);
                    }
                }
                lane
            });
        lane.first_free()
            .and_then(|k| price.checked_add(i64::from(k).checked_mul(step)?))
    }

    /// When the first slot above `price` frees, on any wallet (all are held).
    fn first_freeing(&self, price: i64) -> Option<i64> {
        let step = self.rules.step.micros();
        (0..self.wallets)
            .flat_map(|w| {
                (1..=i64::from(self.rules.max_slots))
                    .map_while(move |k| Some((w, price.checked_add(k.checked_mul(step)?)?)))
            })
            .filter_map(|key| match self.holds.get(&key)? {
                Hold::Pending { expires_at, .. } => Some(expires_at + self.rules.quarantine_ms),
                Hold::Quarantined { until, .. } | Hold::Elsewhere { until } => Some(*until),
            })
            .min()
    }

    /// Ends an order's hold: quarantined until `now + quarantine`, or freed at once.
    /// Returns whether the order held anything.
    pub fn release(&mut self, order_id: i64, release: Release, now: i64) -> bool {
        let Some(key) = self.by_order.get(&order_id).copied() else {
            return false;
        };
        match release {
            Release::Free => {
                self.take(key);
            }
            Release::Quarantine => self.put(
                key,
                Hold::Quarantined {
                    order_id,
                    until: now + self.rules.quarantine_ms,
                },
            ),
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

    /// Drops quarantines (and holds elsewhere) that are over, and the bitmaps of prices with
    /// nothing held; returns how many holds were dropped.
    pub fn purge(&mut self, now: i64) -> usize {
        let dropped = self.expire(now);
        for ws in &mut self.slots {
            ws.lanes.retain(|_, lane| lane.held > 0);
        }
        dropped
    }

    /// Drops quarantines (and holds elsewhere) that are over; returns how many.
    fn expire(&mut self, now: i64) -> usize {
        let mut dropped = 0;
        while let Some(&(until, wallet, amount)) = self.timed.first()
            && until <= now
        {
            self.take((wallet, amount));
            dropped += 1;
        }
        dropped
    }

    pub fn hold_of(&self, order_id: i64) -> Option<(usize, Money, Hold)> {
        let key = self.by_order.get(&order_id)?;
        let hold = self.holds.get(key)?;
        Some((key.0, Money::from_micros(key.1), *hold))
    }

    /// Sets the hold of `key`, replacing the one before.
    fn put(&mut self, key: (usize, i64), hold: Hold) {
        match self.holds.insert(key, hold) {
            Some(old) => self.forget(key, old),
            None => self.occupy(key, true),
        }
        self.pending += usize::from(is_pending(Some(&hold)));
        if let Some(id) = hold.order_id() {
            self.by_order.insert(id, key);
        }
        if let Some(until) = hold.until() {
            self.timed.insert((until, key.0, key.1));
        }
    }

    /// Removes the hold of `key`; the amount is free again.
    fn take(&mut self, key: (usize, i64)) -> Option<Hold> {
        let old = self.holds.remove(&key)?;
        self.forget(key, old);
        self.occupy(key, false);
        Some(old)
    }

    /// Undoes the indexes of a hold that is replaced or removed.
    fn forget(&mut self, key: (usize, i64), old: Hold) {
        self.pending -= usize::from(is_pending(Some(&old)));
        if let Some(id) = old.order_id()
            && self.by_order.get(&id) == Some(&key)
        {
            self.by_order.remove(&id);
        }
        if let Some(until) = old.until() {
            self.timed.remove(&(until, key.0, key.1));
        }
    }

    /// Marks an amount held (or free) in its wallet's set and in every lane it falls in.
    fn occupy(&mut self, (wallet, amount): (usize, i64), held: bool) {
        let Some(ws) = self.slots.get_mut(wallet) else {
            // a wallet that left the configuration: matched, never handed out
            return;
        };
        let step = self.rules.step.micros();
        let span = step.saturating_mul(i64::from(self.rules.max_slots));
        let residue = amount.rem_euclid(step);
        let range = (residue, amount.saturating_sub(span))..=(residue, amount - step);
        if held {
            ws.held.insert(amount);
            for (&(_, price), lane) in ws.lanes.range_mut(range) {
                lane.set(((amount - price) / step) as u32);
            }
        } else {
            ws.held.remove(&amount);
            for (&(_, price), lane) in ws.lanes.range_mut(range) {
                lane.clear(((amount - price) / step) as u32);
            }
        }
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

    /// The table as it was before the lanes: probe every slot from the price. The lanes must
    /// hand out exactly what probing would.
    struct Probing {
        rules: TableRules,
        wallets: usize,
        holds: HashMap<(usize, i64), Hold>,
        by_order: HashMap<i64, (usize, i64)>,
    }

    impl Probing {
        fn allocate(&mut self, order_id: i64, price: Money, now: i64) -> Result<(usize, i64), i64> {
            let step = self.rules.step.micros();
            let mut retry_at = i64::MAX;
            for wallet in 0..self.wallets {
                for k in 1..=i64::from(self.rules.max_slots) {
                    let key = (wallet, price.micros() + k * step);
                    let blocked_until = match self.holds.get(&key) {
                        None => None,
                        Some(Hold::Pending { expires_at, .. }) => {
                            Some(expires_at + self.rules.quarantine_ms)
                        }
                        Some(Hold::Quarantined { until, .. } | Hold::Elsewhere { until }) => {
                            Some(*until).filter(|u| *u > now)
                        }
                    };
                    match blocked_until {
                        Some(until) => retry_at = retry_at.min(until),
                        None => {
                            let hold = Hold::Pending {
                                order_id,
                                expires_at: now + self.rules.window_ms,
                            };
                            self.holds.insert(key, hold);
                            self.by_order.insert(order_id, key);
                            return Ok(key);
                        }
                    }
                }
            }
            Err(if retry_at == i64::MAX { now } else { retry_at })
        }
    }

    #[test]
    fn lanes_hand_out_what_probing_every_slot_would() {
        let rules = TableRules {
            step: Money::from_micros(1_000),
            max_slots: 70,
            window_ms: 50,
            quarantine_ms: 80,
        };
        let mut lanes = AllocationTable::new(rules, 2);
        let mut probing = Probing {
            rules,
            wallets: 2,
            holds: HashMap::new(),
            by_order: HashMap::new(),
        };
        // prices whose slots overlap (10.000 and 10.005 share 65 amounts) and one apart
        let prices = [10_000_000, 10_005_000, 10_000_500, 12_000_000].map(Money::from_micros);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut now, mut live, mut exhausted) = (0i64, Vec::new(), 0);
        for order in 0..20_000i64 {
            now += next(3) as i64;
            if next(3) > 0 {
                let price = prices[next(4) as usize];
                let got = lanes
                    .allocate(order, price, now)
                    .map(|a| (a.wallet, a.amount.micros()))
                    .map_err(|e| e.retry_at);
                assert_eq!(got, probing.allocate(order, price, now), "order {order}");
                match got {
                    Ok(_) => live.push(order),
                    Err(_) => exhausted += 1,
                }
            } else if !live.is_empty() {
                let order = live.swap_remove(next(live.len() as u64) as usize);
                let key = probing.by_order[&order];
                if next(4) == 0 {
                    lanes.release(order, Release::Free, now);
                    probing.holds.remove(&key);
                } else {
                    lanes.release(order, Release::Quarantine, now);
                    let until = now + rules.quarantine_ms;
                    probing.holds.insert(
                        key,
                        Hold::Quarantined {
                            order_id: order,
                            until,
                        },
                    );
                }
            }
            let (w, a) = (
                next(2) as usize,
                prices[0].micros() + next(80) as i64 * 1_000,
            );
            assert_eq!(
                lanes.match_transfer(w, Money::from_micros(a), now),
                match probing.holds.get(&(w, a)) {
                    Some(Hold::Pending {
                        order_id,
                        expires_at,
                    }) if now <= *expires_at => MatchResult::Order(*order_id),
                    Some(Hold::Pending { order_id, .. }) => MatchResult::Late(*order_id),
                    Some(Hold::Quarantined { order_id, until }) if now < *until => {
                        MatchResult::Late(*order_id)
                    }
                    _ => MatchResult::NoMatch,
                },
                "transfer of {a} to wallet {w} at {now}"
            );
        }
        assert!(
            exhausted > 100,
            "the wallets were full at times ({exhausted})"
        );
        lanes.purge(now);
        let live_holds = probing
            .holds
            .values()
            .filter(|h| h.until().is_none_or(|until| until > now))
            .count();
        assert_eq!(lanes.len(), live_holds, "finished quarantines are dropped");
    }

    #[test]
    fn a_nearly_full_lane_finds_its_last_slot() {
        let mut t = table(1, 4_500);
        for order in 0..4_499 {
            t.allocate(order, PRICE, 0).unwrap();
        }
        t.release(17, Release::Free, 0);
        let a = t.allocate(10_000, PRICE, 0).unwrap();
        assert_eq!(a.amount, Money::from_micros(PRICE.micros() + 18 * 1_000));
        let last = t.allocate(10_001, PRICE, 0).unwrap();
        assert_eq!(
            last.amount,
            Money::from_micros(PRICE.micros() + 4_500 * 1_000)
        );
        assert!(
            t.allocate(10_002, PRICE, 0).is_err(),
            "all 4,500 slots are held"
        );
    }
}
