//! What keeps dashboard logins from being flooded or brute-forced:
//!
//! - **Attempts are reserved before the password is checked.** A login takes a slot for its
//!   username and for its client address first; failed and in-progress attempts together are
//!   capped (10 per name, 50 per address, per 15 minutes), so 60 parallel guesses get at most 10
//!   password checks. An attempt whose request is dropped midway counts as failed.
//! - **Password checks run on a small pool of their own.** Argon2 needs about 19 MiB per check;
//!   two worker threads do them, each in a working buffer allocated once and reused, with two
//!   more checks waiting at most. An attempt that finds the pool full is answered at once with
//!   429 `busy` and `Retry-After: 1`, so a flood costs neither memory nor the async runtime's
//!   threads.
//! - **Bounded memory.** Usernames longer than 64 characters are refused before anything is
//!   stored; each map holds at most 10,000 names or addresses (expired entries are dropped first;
//!   when it is still full, the oldest entry is forgotten).
//! - **No secret in the audit log.** A name that is not an account is recorded as
//!   `unknown#<8 hex digits>`, a keyed hash that lets operators see repeats within a run
//!   without keeping what was typed (often a password typed into the wrong field).

use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::oneshot;

/// The longest username a login may carry.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Failed (or in-progress) logins of one name within `WINDOW`.
pub const MAX_PER_NAME: u32 = 10;
/// Failed (or in-progress) logins from one client address within `WINDOW`.
pub const MAX_PER_ADDRESS: u32 = 50;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names, and addresses, remembered at most.
const MAX_TRACKED: usize = 10_000;
/// Threads that check passwords, and checks waiting for one.
const CHECKERS: usize = 2;
const WAITING: usize = 2;

/// Why a login is not tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures of this name or from this address; try again after this long.
    Locked { retry_after: Duration },
    /// Too many logins being checked right now; try again in a second.
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    failed: u32,
    in_flight: u32,
    since: Instant,
}

impl Attempts {
    fn fresh() -> Self {
        Attempts {
            failed: 0,
            in_flight: 0,
            since: Instant::now(),
        }
    }

    fn expired(&self) -> bool {
        self.since.elapsed() > WINDOW
    }
}

type Job = (String, String, oneshot::Sender<bool>);

/// The login guard of one instance.
pub struct LoginGuard {
    names: DashMap<String, Attempts>,
    addresses: DashMap<IpAddr, Attempts>,
    jobs: SyncSender<Job>,
    audit_key: [u8; 32],
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginGuard {
    pub fn new() -> Self {
        let (jobs, queue) = sync_channel::<Job>(WAITING);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..CHECKERS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || check_passwords(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-check thread");
            }
        }
        LoginGuard {
            names: DashMap::new(),
            addresses: DashMap::new(),
            jobs,
            audit_key: rand::random(),
        }
    }

    /// Takes a slot for a login of `name` (none for a token login) from `address`, before any
    /// check. Finish the reservation with [`Reservation::succeeded`] or let it drop as failed.
    pub fn reserve(&self, name: Option<&str>, address: IpAddr) -> Result<Reservation<'_>, Refusal> {
        reserve_in(&self.addresses, address, MAX_PER_ADDRESS)?;
        if let Some(name) = name
            && let Err(refusal) = reserve_in(&self.names, name.to_owned(), MAX_PER_NAME)
        {
            release(&self.addresses, &address, false);
            return Err(refusal);
        }
        Ok(Reservation {
            guard: self,
            name: name.map(str::to_owned),
            address,
            done: false,
        })
    }

    /// Checks `password` against the PHC string `hash` on the password-check pool.
    pub async fn check_password(&self, password: &str, hash: &str) -> Result<bool, Refusal> {
        let (reply, answer) = oneshot::channel();
        match self
            .jobs
            .try_send((password.to_owned(), hash.to_owned(), reply))
        {
            Ok(()) => answer.await.map_err(|_| Refusal::Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Refusal::Busy),
        }
    }

    /// How the audit log names a login name that is not an account.
    pub fn unknown_name(&self, name: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.audit_key).expect("hmac accepts any key length");
        mac.update(name.as_bytes());
        format!("unknown#{}", &hex::encode(mac.finalize().into_bytes())[..8])
    }

    /// Names and addresses remembered now (for tests and the load harness).
    pub fn tracked(&self) -> (usize, usize) {
        (self.names.len(), self.addresses.len())
    }
}

fn check_passwords(queue: &Mutex<Receiver<Job>>) {
    // the working memory of argon2, allocated once per thread and reused for every check:
    // allocating it per check let the allocator keep ~19 MiB more after each one
    let mut blocks: Vec<argon2::Block> = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok((password, hash, reply)) = job else {
            return;
        };
        let _ = reply.send(verify_reusing(&password, &hash, &mut blocks));
    }
}

/// Argon2 memory a stored hash may ask for, in 1 KiB blocks (64 MiB; accounts get 19 MiB).
const MAX_BLOCKS: usize = 64 * 1024;

/// Whether `password` matches the argon2 PHC string `phc`, computed in `blocks` (grown to the
/// hash's memory cost once, never shrunk). A malformed hash, or one asking for more than
/// `MAX_BLOCKS`, matches nothing.
fn verify_reusing(password: &str, phc: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    use argon2::password_hash::PasswordHash;
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let count = params.block_count();
    if count > MAX_BLOCKS {
        return false;
    }
    if blocks.len() < count {
        blocks.resize(count, argon2::Block::default());
    }
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut blocks[..count])
        .is_ok()
        && super::auth::constant_time_eq(out, expected.as_bytes())
}

fn reserve_in<K: std::hash::Hash + Eq + Clone>(
    map: &DashMap<K, Attempts>,
    key: K,
    limit: u32,
) -> Result<(), Refusal> {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        map.retain(|_, a| !a.expired() || a.in_flight > 0);
        if map.len() >= MAX_TRACKED {
            // full of recent entries: forget the oldest one rather than refuse everyone new
            // (to clear one name's count an attacker would need 10,000 other attempts first,
            // each of them counted against its address)
            let oldest = map
                .iter()
                .filter(|e| e.in_flight == 0)
                .min_by_key(|e| e.since)
                .map(|e| e.key().clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => return Err(Refusal::Busy),
            }
        }
    }
    let mut entry = map.entry(key).or_insert_with(Attempts::fresh);
    if entry.expired() && entry.in_flight == 0 {
        *entry = Attempts::fresh();
    }
    if entry.failed + entry.in_flight >= limit {
        return Err(Refusal::Locked {
            retry_after: WINDOW
                .saturating_sub(entry.since.elapsed())
                .max(Duration::from_secs(1)),
        });
    }
    entry.in_flight += 1;
    Ok(())
}

fn release<K: std::hash::Hash + Eq>(map: &DashMap<K, Attempts>, key: &K, failed: bool) {
    if let Some(mut a) = map.get_mut(key) {
        a.in_flight = a.in_flight.saturating_sub(1);
        if failed {
            a.failed += 1;
        }
    }
}

/// A login being tried. Dropped without [`Reservation::succeeded`], it counts as failed.
pub struct Reservation<'a> {
    guard: &'a LoginGuard,
    name: Option<String>,
    address: IpAddr,
    done: bool,
}

impl Reservation<'_> {
    /// The login succeeded: the name's failures are forgotten.
    pub fn succeeded(mut self) {
        self.done = true;
        release(&self.guard.addresses, &self.address, false);
        if let Some(name) = &self.name {
            self.guard.names.remove(name);
        }
    }

    /// Gives the slot back without counting a failure (the attempt was never checked).
    pub fn not_tried(mut self) {
        self.done = true;
        release(&self.guard.addresses, &self.address, false);
        if let Some(name) = &self.name {
            release(&self.guard.names, name, false);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        release(&self.guard.addresses, &self.address, true);
        if let Some(name) = &self.name {
            release(&self.guard.names, name, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_are_checked() {
        let g = LoginGuard::new();
        let mut held = Vec::new();
        let mut refused = 0;
        for i in 0..60u8 {
            match g.reserve(Some("admin"), addr(i)) {
                Ok(r) => held.push(r),
                Err(Refusal::Locked { .. }) => refused += 1,
                Err(Refusal::Busy) => panic!("not busy"),
            }
        }
        assert_eq!((held.len(), refused), (10, 50));
        drop(held);
        assert!(matches!(
            g.reserve(Some("admin"), addr(200)),
            Err(Refusal::Locked { .. })
        ));
    }

    #[test]
    fn one_address_is_throttled_across_names() {
        let g = LoginGuard::new();
        for i in 0..MAX_PER_ADDRESS {
            drop(g.reserve(Some(&format!("name{i}")), addr(1)).unwrap());
        }
        assert!(matches!(
            g.reserve(Some("fresh"), addr(1)),
            Err(Refusal::Locked { .. })
        ));
        assert!(g.reserve(Some("fresh"), addr(2)).is_ok());
    }

    #[test]
    fn success_forgets_the_name_s_failures_and_untried_attempts_cost_nothing() {
        let g = LoginGuard::new();
        for _ in 0..9 {
            drop(g.reserve(Some("ann"), addr(1)).unwrap());
        }
        g.reserve(Some("ann"), addr(1)).unwrap().succeeded();
        for _ in 0..20 {
            g.reserve(Some("ann"), addr(1)).unwrap().not_tried();
        }
        assert!(g.reserve(Some("ann"), addr(1)).is_ok());
    }

    #[test]
    fn the_maps_stay_bounded_and_still_take_new_names() {
        let g = LoginGuard::new();
        for i in 0..(MAX_TRACKED + 50) {
            let a = IpAddr::from((i as u32).to_be_bytes());
            drop(g.reserve(Some(&format!("n{i}")), a).unwrap());
        }
        let (names, addresses) = g.tracked();
        assert_eq!((names, addresses), (MAX_TRACKED, MAX_TRACKED));
        assert!(g.names.contains_key(&format!("n{}", MAX_TRACKED + 49)));
        assert!(!g.names.contains_key("n0"), "the oldest is forgotten first");
    }

    #[test]
    fn unknown_names_are_recorded_without_their_text() {
        let g = LoginGuard::new();
        let a = g.unknown_name("hunter2-password");
        assert!(a.starts_with("unknown#") && a.len() == 16, "{a}");
        assert!(!a.contains("hunter2"));
        assert_eq!(a, g.unknown_name("hunter2-password"), "repeats are visible");
        assert_ne!(a, g.unknown_name("other"));
    }

    #[test]
    fn the_reusing_check_agrees_with_the_argon2_crate() {
        let mut blocks = Vec::new();
        let hash = super::super::auth::hash_password("correct horse").unwrap();
        for (password, expected) in [
            ("correct horse", true),
            ("correct hors", false),
            ("", false),
        ] {
            assert_eq!(
                verify_reusing(password, &hash, &mut blocks),
                expected,
                "{password}"
            );
            assert_eq!(
                super::super::auth::verify_password(password, &hash),
                expected
            );
        }
        let grown = blocks.capacity();
        assert!(verify_reusing("correct horse", &hash, &mut blocks));
        assert_eq!(blocks.capacity(), grown, "the memory is reused");
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verify_reusing("x", bad, &mut blocks), "{bad}");
        }
        assert_eq!(blocks.capacity(), grown, "no hash makes it allocate 4 GiB");
    }

    #[tokio::test]
    async fn passwords_are_checked_on_the_pool_and_a_full_pool_says_busy() {
        let g = LoginGuard::new();
        let hash = super::super::auth::hash_password("correct horse").unwrap();
        assert_eq!(g.check_password("correct horse", &hash).await, Ok(true));
        assert_eq!(g.check_password("wrong", &hash).await, Ok(false));
        let results =
            futures_util::future::join_all((0..20).map(|_| g.check_password("wrong", &hash))).await;
        let busy = results.iter().filter(|r| **r == Err(Refusal::Busy)).count();
        assert!(busy >= 20 - CHECKERS - WAITING, "{results:?}");
        assert!(results.iter().all(|r| *r != Ok(true)));
    }
}
