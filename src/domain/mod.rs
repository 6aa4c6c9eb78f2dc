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

pub mod allocation;
pub mod money;
pub mod order;
pub mod role;
pub mod tron;

pub use money::{Money, MoneyError};
pub use order::{IllegalTransition, OrderStatus, ProductKind};
pub use role::Role;
pub use tron::{TronAddress, TronAddressError};

/// Milliseconds since the Unix epoch: the one time format stored in the database, so both
/// backends compare and sort times the same way.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
