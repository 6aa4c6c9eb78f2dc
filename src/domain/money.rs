//! Money as an integer number of micro-units.
//!
//! USDT on TRON has 6 decimals, so every amount in the system is an `i64` of micro-USDT
//! (1 USDT = 1_000_000). Decimal strings are parsed and printed only at the edges (config, API,
//! bot texts); nothing in between ever touches a float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of decimals carried by every amount.
pub const DECIMALS: u32 = 6;
/// Micro-units in one whole unit.
pub const SCALE: i64 = 1_000_000;

/// An exact amount in micro-units. Negative values exist only as ledger deltas; parsing from
/// user input rejects them unless [`Money::parse_signed`] is used.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a decimal string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount has more than 6 decimals")]
    TooManyDecimals,
    #[error("not a plain decimal number (digits and at most one '.', such as 12.5)")]
    Malformed,
    #[error("amount is too large")]
    Overflow,
}

impl Money {
    pub const ZERO: Money = Money(0);

    /// Builds an amount from micro-units.
    pub const fn from_micros(micros: i64) -> Self {
        Money(micros)
    }

    /// Builds an amount from whole units; `None` on overflow.
    pub const fn from_units(units: i64) -> Option<Self> {
        match units.checked_mul(SCALE) {
            Some(m) => Some(Money(m)),
            None => None,
        }
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        self.0.checked_mul(factor).map(Money)
    }

    /// `self * bps / 10_000`, rounded down (commissions never pay out more than earned).
    pub fn basis_points(self, bps: u32) -> Option<Money> {
        let wide = i128::from(self.0) * i128::from(bps) / 10_000;
        i64::try_from(wide).ok().map(Money)
    }

    /// Parses a non-negative decimal amount such as `"10.000123"` exactly.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let m = Self::parse_signed(s)?;
        if m.is_negative() || s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        Ok(m)
    }

    /// Parses a decimal amount that may carry a leading `-` (ledger adjustments).
    pub fn parse_signed(s: &str) -> Result<Self, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::Malformed);
        }
        let frac = match frac {
            None => "",
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(MoneyError::Malformed);
            }
            Some(f) if f.len() > DECIMALS as usize => return Err(MoneyError::TooManyDecimals),
            Some(f) => f,
        };
        let mut micros: i64 = 0;
        for b in whole.bytes() {
            micros = micros
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        micros = micros.checked_mul(SCALE).ok_or(MoneyError::Overflow)?;
        let mut frac_value: i64 = 0;
        for b in frac.bytes() {
            frac_value = frac_value * 10 + i64::from(b - b'0');
        }
        frac_value *= 10_i64.pow(DECIMALS - frac.len() as u32);
        micros = micros.checked_add(frac_value).ok_or(MoneyError::Overflow)?;
        Ok(Money(if negative { -micros } else { micros }))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE as u64;
        write!(f, "{sign}{}.{:06}", abs / scale, abs % scale)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

/// Micro-units straight from storage.
impl From<i64> for Money {
    fn from(micros: i64) -> Self {
        Money(micros)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

/// Amounts travel as decimal strings in JSON and config so no client ever sees a float.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Money::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_six_decimals() {
        assert_eq!(Money::parse("10.000123").unwrap().micros(), 10_000_123);
        assert_eq!(Money::parse("0.000001").unwrap().micros(), 1);
        assert_eq!(Money::parse("79").unwrap().micros(), 79_000_000);
        assert_eq!(Money::parse("0.5").unwrap().micros(), 500_000);
        assert_eq!(Money::parse("007.10").unwrap().micros(), 7_100_000);
    }

    #[test]
    fn rejects_a_seventh_decimal() {
        assert_eq!(Money::parse("10.0000001"), Err(MoneyError::TooManyDecimals));
    }

    #[test]
    fn rejects_negatives_unless_signed() {
        assert_eq!(Money::parse("-1"), Err(MoneyError::Negative));
        assert_eq!(Money::parse_signed("-1.5").unwrap().micros(), -1_500_000);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "1e6", "1E-2", "+1", " 1", "1 ", "1.", ".5", "1..2", "1.2.3", "0x10", "١", "1,5",
            "NaN", "inf", "--1", "1_000",
        ] {
            assert_eq!(Money::parse(bad), Err(MoneyError::Malformed), "{bad:?}");
        }
        assert_eq!(Money::parse(""), Err(MoneyError::Empty));
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            Money::parse("9223372036854.775808"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("99999999999999999999"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("9223372036854.775807").unwrap().micros(),
            i64::MAX
        );
    }

    #[test]
    fn prints_six_decimals() {
        assert_eq!(Money::from_micros(10_000_123).to_string(), "10.000123");
        assert_eq!(Money::from_micros(0).to_string(), "0.000000");
        assert_eq!(Money::from_micros(-1).to_string(), "-0.000001");
        assert_eq!(
            Money::from_micros(i64::MIN).to_string(),
            "-9223372036854.775808"
        );
    }

    #[test]
    fn round_trips_through_strings_and_json() {
        for micros in [0, 1, 999_999, 1_000_000, 195_170_000, i64::MAX] {
            let m = Money::from_micros(micros);
            assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        }
        assert!(
            serde_json::from_str::<Money>("1.5").is_err(),
            "floats are refused"
        );
    }

    #[test]
    fn basis_points_round_down() {
        let m = Money::parse("10.000001").unwrap();
        assert_eq!(m.basis_points(1_000).unwrap().micros(), 1_000_000);
        assert_eq!(
            Money::from_micros(1).basis_points(9_999).unwrap().micros(),
            0
        );
    }
}
