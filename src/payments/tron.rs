//! TRON wire formats: TronGrid v1 TRC-20 listings and full-node blocks and transaction infos,
//! decoded into transfers to our wallets. Pure functions over response bodies, so every shape
//! and fault in `tests/data/wire/` is tested without a network.
//!
//! Transfer identity: TronGrid does not report an event's log index, so both sources number a
//! transaction's USDT transfers to one receiving address 0, 1, 2... in event order. That index,
//! with the chain and transaction id, is the key a transfer is recorded under, and it is the same
//! whichever source (or the webhook) reports the transfer first.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::domain::{Money, TronAddress};

/// keccak256("Transfer(address,address,uint256)")
pub const TRANSFER_TOPIC: &str = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// A transfer to one of our wallets, as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireTransfer {
    pub txid: String,
    pub log_index: i64,
    pub from: String,
    pub to: String,
    pub amount: Money,
    pub block_number: Option<i64>,
    pub block_time: i64,
}

impl WireTransfer {
    /// The transfer as the payment pipeline records it.
    pub fn to_new(&self, confirmed: bool, source: &str) -> crate::store::NewTransfer {
        crate::store::NewTransfer {
            chain: super::CHAIN.to_owned(),
            txid: self.txid.clone(),
            log_index: self.log_index,
            token: super::TOKEN.to_owned(),
            from_address: self.from.clone(),
            to_address: self.to.clone(),
            amount: self.amount,
            block_number: self.block_number,
            block_time: self.block_time,
            confirmed,
            source: source.to_owned(),
        }
    }
}

/// What is wrong with an upstream answer. `kind()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("upstream refused: {0}")]
    Api(String),
    #[error("node error: {0}")]
    Node(String),
    #[error("listing out of order: {0}")]
    OutOfOrder(String),
}

impl WireError {
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::Malformed(_) => "malformed",
            WireError::Api(_) => "api_error",
            WireError::Node(_) => "node_error",
            WireError::OutOfOrder(_) => "out_of_order",
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> WireError {
    WireError::Malformed(e.to_string())
}

fn is_txid(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Base units (6 decimals) as decimal digits -> micro-units.
fn parse_base_units(s: &str) -> Result<Money, WireError> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WireError::Malformed(format!(
            "value {s:?} is not an amount"
        )));
    }
    s.parse::<i64>().map(Money::from_micros).map_err(malformed)
}

/// Numbers each (txid, receiver) pair's transfers in the order they are met.
#[derive(Default)]
pub struct LogIndexer {
    seen: HashMap<(String, String), i64>,
}

impl LogIndexer {
    pub fn next(&mut self, txid: &str, to: &str) -> i64 {
        let n = self
            .seen
            .entry((txid.to_owned(), to.to_owned()))
            .or_insert(0);
        let index = *n;
        *n += 1;
        index
    }
}

// ---- TronGrid v1 -------------------------------------------------------------------------

#[derive(Deserialize)]
struct TgPage {
    success: bool,
    #[serde(default)]
    data: Option<Vec<TgItem>>,
    #[serde(default)]
    meta: Option<TgMeta>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct TgMeta {
    #[serde(default)]
    fingerprint: Option<String>,
}

#[derive(Deserialize)]
struct TgItem {
    transaction_id: String,
    token_info: TgToken,
    block_timestamp: i64,
    from: String,
    to: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct TgToken {
    address: String,
    decimals: u32,
}

/// One page of `GET /v1/accounts/{wallet}/transactions/trc20`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TronGridPage {
    pub transfers: Vec<WireTransfer>,
    /// Items on the page, including ones that are not ours (for paging decisions).
    pub items: usize,
    /// Block time of the last item on the page.
    pub last_time: Option<i64>,
    pub fingerprint: Option<String>,
}

/// The message of TronGrid's JSON error body (`{"success":false,"error":...}`), if it is one.
pub fn trongrid_error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("error")
        .and_then(|e| e.as_str())
        .map(str::to_owned)
        .or_else(|| v.get("Error").and_then(|e| e.as_str()).map(str::to_owned))
}

/// Decodes a TRC-20 listing page, keeping USDT transfers to `wallet`. Items must come in
/// ascending block time, continuing from `after` (the last time of the previous page).
pub fn parse_trongrid_page(
    body: &[u8],
    wallet: &TronAddress,
    contract: &TronAddress,
    after: Option<i64>,
    indexer: &mut LogIndexer,
) -> Result<TronGridPage, WireError> {
    let page: TgPage = serde_json::from_slice(body).map_err(malformed)?;
    if !page.success {
        return Err(WireError::Api(
            page.error.unwrap_or_else(|| "success: false".to_owned()),
        ));
    }
    let items = page.data.ok_or_else(|| malformed("no data array"))?;
    let wallet_text = wallet.to_string();
    let contract_text = contract.to_string();
    let mut last = after;
    let mut transfers = Vec::new();
    for item in &items {
        if let Some(prev) = last
            && item.block_timestamp < prev
        {
            return Err(WireError::OutOfOrder(format!(
                "{} at {} comes after {}",
                item.transaction_id, item.block_timestamp, prev
            )));
        }
        last = Some(item.block_timestamp);
        if !is_txid(&item.transaction_id) {
            return Err(malformed(format!(
                "transaction id {:?}",
                item.transaction_id
            )));
        }
        if item.kind != "Transfer"
            || item.token_info.address != contract_text
            || item.to != wallet_text
        {
            continue;
        }
        if item.token_info.decimals != 6 {
            return Err(malformed(format!(
                "USDT with {} decimals",
                item.token_info.decimals
            )));
        }
        let from = TronAddress::parse(&item.from)
            .map_err(|e| malformed(format!("from {:?}: {e}", item.from)))?;
        let amount = parse_base_units(&item.value)?;
        if !amount.is_positive() {
            continue;
        }
        let txid = item.transaction_id.to_ascii_lowercase();
        transfers.push(WireTransfer {
            log_index: indexer.next(&txid, &wallet_text),
            txid,
            from: from.to_string(),
            to: wallet_text.clone(),
            amount,
            block_number: None,
            block_time: item.block_timestamp,
        });
    }
    Ok(TronGridPage {
        transfers,
        items: items.len(),
        last_time: items.last().map(|i| i.block_timestamp),
        fingerprint: page
            .meta
            .and_then(|m| m.fingerprint)
            .filter(|f| !f.is_empty()),
    })
}

// ---- full node ---------------------------------------------------------------------------

/// The head of a chain (`/wallet/getnowblock`, `/walletsolidity/getnowblock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHead {
    pub number: i64,
    pub timestamp: i64,
}

#[derive(Deserialize)]
struct FnBlock {
    block_header: FnHeader,
}

#[derive(Deserialize)]
struct FnHeader {
    raw_data: FnRaw,
}

#[derive(Deserialize)]
struct FnRaw {
    number: i64,
    timestamp: i64,
}

/// A java-tron node under load answers HTTP 200 with `{"Error": "..."}`.
fn node_error(body: &[u8]) -> Option<WireError> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("Error").map(|e| {
        WireError::Node(
            e.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string()),
        )
    })
}

pub fn parse_block_head(body: &[u8]) -> Result<BlockHead, WireError> {
    if let Some(e) = node_error(body) {
        return Err(e);
    }
    let b: FnBlock = serde_json::from_slice(body).map_err(malformed)?;
    if b.block_header.raw_data.number < 0 {
        return Err(malformed("negative block number"));
    }
    Ok(BlockHead {
        number: b.block_header.raw_data.number,
        timestamp: b.block_header.raw_data.timestamp,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FnTxInfo {
    id: String,
    block_number: i64,
    block_time_stamp: i64,
    #[serde(default)]
    receipt: Option<FnReceipt>,
    #[serde(default)]
    log: Vec<FnLog>,
}

#[derive(Deserialize)]
struct FnReceipt {
    #[serde(default)]
    result: Option<String>,
}

#[derive(Deserialize)]
struct FnLog {
    #[serde(default)]
    address: String,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    data: String,
}

/// What one block's transaction infos hold for us.
#[derive(Debug, Default)]
pub struct BlockTransfers {
    /// Successful USDT transfers to our wallets.
    pub transfers: Vec<WireTransfer>,
    /// The block's time, when it has any transaction (an empty block answers `{}` or `[]`).
    pub time: Option<i64>,
}

/// Decodes `/wallet/gettransactioninfobyblocknum` for block `num`: successful USDT `Transfer`
/// logs to one of `wallets`, and the block's time. An empty block answers `{}`, which is no
/// transfers; a transaction of another block is `malformed`.
pub fn parse_block_transfers(
    body: &[u8],
    num: i64,
    contract: &TronAddress,
    wallets: &HashSet<String>,
) -> Result<BlockTransfers, WireError> {
    if let Some(e) = node_error(body) {
        return Err(e);
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(malformed)?;
    let infos: Vec<FnTxInfo> = match value {
        serde_json::Value::Object(ref m) if m.is_empty() => return Ok(BlockTransfers::default()),
        serde_json::Value::Array(_) => serde_json::from_value(value).map_err(malformed)?,
        _ => return Err(malformed("expected an array of transaction infos or {}")),
    };
    let contract_hex = contract.account_hex();
    let mut indexer = LogIndexer::default();
    let mut out = Vec::new();
    let time = infos.first().map(|i| i.block_time_stamp);
    for info in infos {
        if !is_txid(&info.id) {
            return Err(malformed(format!("transaction id {:?}", info.id)));
        }
        if info.block_number != num {
            return Err(malformed(format!(
                "asked for block {num}, the node answered with a transaction of block {}",
                info.block_number
            )));
        }
        let ok = info.receipt.as_ref().and_then(|r| r.result.as_deref()) == Some("SUCCESS");
        if !ok {
            continue;
        }
        let txid = info.id.to_ascii_lowercase();
        for log in &info.log {
            if !log.address.eq_ignore_ascii_case(&contract_hex)
                || log.topics.len() != 3
                || !log.topics[0].eq_ignore_ascii_case(TRANSFER_TOPIC)
            {
                continue;
            }
            let account = |topic: &str| -> Result<TronAddress, WireError> {
                if topic.len() != 64 {
                    return Err(malformed(format!("topic {topic:?}")));
                }
                TronAddress::from_account_hex(&topic[24..]).map_err(malformed)
            };
            let to = account(&log.topics[2])?.to_string();
            if !wallets.contains(&to) {
                continue;
            }
            let from = account(&log.topics[1])?.to_string();
            let amount = decode_uint256(&log.data)?;
            let Some(amount) = amount.filter(|a| a.is_positive()) else {
                tracing::warn!(txid = %txid, "transfer amount zero or beyond range; ignored");
                continue;
            };
            out.push(WireTransfer {
                log_index: indexer.next(&txid, &to),
                txid: txid.clone(),
                from,
                to,
                amount,
                block_number: Some(info.block_number),
                block_time: info.block_time_stamp,
            });
        }
    }
    Ok(BlockTransfers {
        transfers: out,
        time,
    })
}

/// A 32-byte big-endian integer as hex; `None` when it does not fit an amount.
fn decode_uint256(data: &str) -> Result<Option<Money>, WireError> {
    if data.len() != 64 || !data.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(format!("log data {data:?}")));
    }
    if data[..48].bytes().any(|b| b != b'0') {
        return Ok(None);
    }
    let v = u64::from_str_radix(&data[48..], 16).map_err(malformed)?;
    Ok(i64::try_from(v).ok().map(Money::from_micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRC20: &str = include_str!("../../tests/data/wire/trongrid-trc20.json");
    const EMPTY: &str = include_str!("../../tests/data/wire/trongrid-trc20-empty.json");
    const ERR403: &str = include_str!("../../tests/data/wire/trongrid-error-403.json");
    const NOW: &str = include_str!("../../tests/data/wire/fullnode-getnowblock.json");
    const TXINFO: &str = include_str!("../../tests/data/wire/fullnode-txinfo-by-block.json");

    fn usdt() -> TronAddress {
        TronAddress::parse("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t").unwrap()
    }

    #[test]
    fn trongrid_sample_decodes() {
        let wallet = TronAddress::parse("TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh").unwrap();
        let page = parse_trongrid_page(
            TRC20.as_bytes(),
            &wallet,
            &usdt(),
            None,
            &mut LogIndexer::default(),
        )
        .unwrap();
        assert_eq!(page.fingerprint.as_deref(), Some("2Tc1pVSmcD9VxQz9"));
        assert_eq!(page.transfers.len(), 1);
        let t = &page.transfers[0];
        assert_eq!(t.amount.to_string(), "195.170000");
        assert_eq!(t.from, "TNtbiqvanUnm4YHK9SYzRGR8ktiHRduDbM");
        assert_eq!(t.block_time, 1_784_641_290_000);
        assert_eq!(t.log_index, 0);
        let empty = parse_trongrid_page(
            EMPTY.as_bytes(),
            &wallet,
            &usdt(),
            None,
            &mut LogIndexer::default(),
        )
        .unwrap();
        assert!(empty.transfers.is_empty() && empty.fingerprint.is_none());
    }

    #[test]
    fn trongrid_faults_are_typed() {
        let wallet = TronAddress::parse("TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh").unwrap();
        let mut ix = LogIndexer::default();
        let err =
            parse_trongrid_page(ERR403.as_bytes(), &wallet, &usdt(), None, &mut ix).unwrap_err();
        assert_eq!(err.kind(), "api_error");
        assert!(
            trongrid_error_message(ERR403.as_bytes())
                .unwrap()
                .contains("frequency limit")
        );
        let truncated = &TRC20.as_bytes()[..TRC20.len() / 2];
        assert_eq!(
            parse_trongrid_page(truncated, &wallet, &usdt(), None, &mut ix)
                .unwrap_err()
                .kind(),
            "malformed"
        );
        let err = parse_trongrid_page(
            TRC20.as_bytes(),
            &wallet,
            &usdt(),
            Some(1_784_641_290_001),
            &mut ix,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "out_of_order");
        let bad_value = TRC20.replace("\"195170000\"", "\"1.5\"");
        assert_eq!(
            parse_trongrid_page(bad_value.as_bytes(), &wallet, &usdt(), None, &mut ix)
                .unwrap_err()
                .kind(),
            "malformed"
        );
    }

    #[test]
    fn full_node_samples_decode() {
        let head = parse_block_head(NOW.as_bytes()).unwrap();
        assert_eq!(head.number, 86_740_522);
        let wallets: HashSet<String> = ["TWsghcMkFXe1hnwZAWVQ9fUrZBtYv2aGJ8".to_owned()].into();
        let block =
            parse_block_transfers(TXINFO.as_bytes(), 86_738_346, &usdt(), &wallets).unwrap();
        assert_eq!(block.time, Some(1_790_887_644_000));
        let ts = block.transfers;
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].from, "TDuvkvLEhHvy3VQDWowtt16n3W5khHgsaL");
        assert_eq!(ts[0].amount.to_string(), "79.000000");
        assert_eq!(ts[0].block_number, Some(86_738_346));
        // not our wallet: nothing
        assert!(
            parse_block_transfers(TXINFO.as_bytes(), 86_738_346, &usdt(), &HashSet::new())
                .unwrap()
                .transfers
                .is_empty()
        );
        // a node behind a balancer answering for another block is refused
        assert_eq!(
            parse_block_transfers(TXINFO.as_bytes(), 86_738_347, &usdt(), &wallets)
                .unwrap_err()
                .kind(),
            "malformed"
        );
        let empty = parse_block_transfers(b"{}", 1, &usdt(), &wallets).unwrap();
        assert!(empty.transfers.is_empty());
        assert_eq!(empty.time, None);
        assert!(
            parse_block_transfers(b"[]", 1, &usdt(), &wallets)
                .unwrap()
                .transfers
                .is_empty()
        );
    }

    #[test]
    fn full_node_faults_are_typed() {
        let wallets: HashSet<String> = HashSet::new();
        let busy = br#"{"Error":"class java.lang.NullPointerException : null"}"#;
        assert_eq!(parse_block_head(busy).unwrap_err().kind(), "node_error");
        assert_eq!(
            parse_block_transfers(busy, 1, &usdt(), &wallets)
                .unwrap_err()
                .kind(),
            "node_error"
        );
        assert_eq!(
            parse_block_head(b"{\"blockID\":").unwrap_err().kind(),
            "malformed"
        );
        assert_eq!(
            parse_block_transfers(b"\"x\"", 1, &usdt(), &wallets)
                .unwrap_err()
                .kind(),
            "malformed"
        );
    }

    #[test]
    fn failed_transactions_and_other_tokens_are_ignored() {
        let wallets: HashSet<String> = ["TWsghcMkFXe1hnwZAWVQ9fUrZBtYv2aGJ8".to_owned()].into();
        let reverted = TXINFO.replace("\"SUCCESS\"", "\"REVERT\"");
        assert!(
            parse_block_transfers(reverted.as_bytes(), 86_738_346, &usdt(), &wallets)
                .unwrap()
                .transfers
                .is_empty()
        );
        let other = TXINFO.replace("\"address\":\"a614f803", "\"address\":\"b614f803");
        assert!(
            parse_block_transfers(other.as_bytes(), 86_738_346, &usdt(), &wallets)
                .unwrap()
                .transfers
                .is_empty()
        );
    }
}
