//! Plain domain types with their invariants: money in micro-units, TRON addresses, order and
//! product kinds with the order state machine, and wall-clock helpers. No I/O lives here.

/// A string that names no known value of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
}

/// Gives a plain enum its snake_case text form: `as_str`, `Display`, `FromStr`, `TryFrom<String>`
/// (for database columns) and the list of all values.
macro_rules! string_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::domain::UnknownVariant;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::domain::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err($crate::domain::UnknownVariant { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}

pub mod account;
pub mod agent;
pub mod allocation;
pub mod event;
pub mod money;
pub mod order;
pub mod role;
pub mod stars;
pub mod text;
pub mod transfer;
pub mod tron;

pub use agent::AgentStatus;
pub use allocation::AllocationState;
pub use event::{Audience, OrderCallback, OutboxEvent};
pub use money::{Money, MoneyError};
pub use order::{IllegalTransition, OrderRuleError, OrderStatus, ProductKind, ProductOffer};
pub use role::Role;
pub use stars::PaymentMethod;
pub use transfer::{Ingested, Placement, TransferOutcome};
pub use tron::{TronAddress, TronAddressError};

/// Milliseconds since the Unix epoch: the one time format stored in the database, so both
/// backends compare and sort times the same way.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM` in UTC for a Unix-milliseconds time (civil-from-days, no time-zone data).
pub fn utc_minutes(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn utc_minutes_formats_known_instants() {
        assert_eq!(super::utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(super::utc_minutes(1_784_641_290_000), "2026-07-21 13:41");
        assert_eq!(super::utc_minutes(951_782_400_000), "2000-02-29 00:00");
    }
}
