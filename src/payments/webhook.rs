//! The signed payment webhook (`POST /internal/payments/notify`), for external chain watchers and
//! manual confirmation: signature check and request validation, before anything is stored.
//!
//! The caller sends `X-Telebot-Timestamp: <unix seconds>` and
//! `X-Telebot-Signature: sha256=<hex>`, where the hex is HMAC-SHA256 with `security.webhook_secret`
//! over `<timestamp>.<raw body>`. Requests older or newer than `security.webhook_replay_window`
//! are refused, so a captured request cannot be replayed later; a replay inside the window is
//! harmless because transfers are idempotent by (chain, txid, log index).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{CHAIN, TOKEN};
use crate::domain::{Money, TronAddress};
use crate::store::NewTransfer;

pub const TIMESTAMP_HEADER: &str = "x-telebot-timestamp";
pub const SIGNATURE_HEADER: &str = "x-telebot-signature";

/// Why a webhook call is refused before its body is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("timestamp is outside the accepted window (replayed or clock skew)")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// The hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the signature headers against the raw body, in constant time.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    window_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // any timestamp a client can send, even i64::MIN, is only ever stale, never an overflow
    let skew = now_secs.checked_sub(ts).and_then(i64::checked_abs);
    if skew.is_none_or(|s| s > window_secs) {
        return Err(SignatureError::Stale);
    }
    let hex_sig = signature.trim();
    let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
    let given = hex::decode(hex_sig).map_err(|_| SignatureError::Mismatch)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The body of a notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// `tron`.
    pub chain: String,
    /// Transaction id, 64 hex digits.
    pub txid: String,
    /// Position of this transfer among the transaction's USDT transfers to the same address
    /// (0 for the usual single transfer).
    pub log_index: i64,
    /// `USDT`.
    pub token: String,
    pub from: String,
    pub to: String,
    /// Decimal string, up to 6 decimals.
    pub amount: String,
    #[serde(default)]
    pub block_number: Option<i64>,
    /// Block time, Unix milliseconds.
    pub block_time: i64,
    /// Final enough to pay an order.
    pub confirmed: bool,
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl NotifyRequest {
    /// Checks every field and builds the transfer to record.
    pub fn into_transfer(self) -> Result<NewTransfer, FieldError> {
        if self.chain != CHAIN {
            return Err(field("chain", format!("only {CHAIN:?} is supported")));
        }
        if self.token != TOKEN {
            return Err(field("token", format!("only {TOKEN:?} is supported")));
        }
        if self.txid.len() != 64 || !self.txid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(field("txid", "must be 64 hex digits"));
        }
        if !(0..=10_000).contains(&self.log_index) {
            return Err(field("log_index", "must be between 0 and 10000"));
        }
        let from = TronAddress::parse(&self.from).map_err(|e| field("from", e.to_string()))?;
        let to = TronAddress::parse(&self.to).map_err(|e| field("to", e.to_string()))?;
        let amount = Money::parse(&self.amount).map_err(|e| field("amount", e.to_string()))?;
        if !amount.is_positive() {
            return Err(field("amount", "must be greater than zero"));
        }
        if self.block_number.is_some_and(|n| n < 0) {
            return Err(field("block_number", "must not be negative"));
        }
        // between 2018 (TRON mainnet) and a day from now
        if self.block_time < 1_514_764_800_000
            || self.block_time > crate::domain::now_ms() + 86_400_000
        {
            return Err(field(
                "block_time",
                "must be a plausible Unix time in milliseconds",
            ));
        }
        Ok(NewTransfer {
            chain: CHAIN.to_owned(),
            txid: self.txid.to_ascii_lowercase(),
            log_index: self.log_index,
            token: TOKEN.to_owned(),
            from_address: from.to_string(),
            to_address: to.to_string(),
            amount,
            block_number: self.block_number,
            block_time: self.block_time,
            confirmed: self.confirmed,
            source: "webhook".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_does_not() {
        let sig = sign("s3cret", "1700000000", b"{\"a\":1}");
        assert!(
            verify(
                "s3cret",
                Some("1700000000"),
                Some(&format!("sha256={sig}")),
                b"{\"a\":1}",
                1_700_000_010,
                300
            )
            .is_ok()
        );
        assert_eq!(
            verify(
                "s3cret",
                Some("1700000000"),
                Some(&sig),
                b"{\"a\":2}",
                1_700_000_010,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                "other",
                Some("1700000000"),
                Some(&sig),
                b"{\"a\":1}",
                1_700_000_010,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_crash() {
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, -1_700_000_000] {
            let ts = ts.to_string();
            let sig = sign("k", &ts, b"x");
            for now in [1_700_000_000, 0] {
                assert_eq!(
                    verify("k", Some(&ts), Some(&sig), b"x", now, 300),
                    Err(SignatureError::Stale),
                    "{ts} at {now}"
                );
            }
        }
    }

    #[test]
    fn stale_or_missing_headers_are_refused() {
        let sig = sign("k", "1700000000", b"x");
        assert_eq!(
            verify(
                "k",
                Some("1700000000"),
                Some(&sig),
                b"x",
                1_700_000_301,
                300
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("k", None, Some(&sig), b"x", 0, 300),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify("k", Some("1700000000"), None, b"x", 0, 300),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify("k", Some("soon"), Some(&sig), b"x", 0, 300),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(
                "k",
                Some("1700000000"),
                Some("zz"),
                b"x",
                1_700_000_000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
