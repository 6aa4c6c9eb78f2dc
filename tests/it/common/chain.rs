//! Loopback peers that speak TronGrid v1 and the TRON full-node HTTP API, in the exact shapes of
//! `tests/data/wire/`, with faults that can be switched on per request.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use telebot::domain::{Money, TronAddress};

pub const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
pub const PAYER: &str = "TNtbiqvanUnm4YHK9SYzRGR8ktiHRduDbM";
const TRANSFER_TOPIC: &str = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// A fault the peer answers with instead of the real response.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP status with TronGrid's JSON error body (`trongrid-error-403.json`).
    TronGridError(u16),
    /// HTTP 200 carrying `{"Error": ...}`, as a java-tron node under load does.
    NodeError,
    /// HTTP 500 with a plain body.
    ServerError,
    /// Answers only after this long (beyond the client's timeout).
    Slow(Duration),
    /// The first half of the real body.
    Truncated,
    /// Not JSON at all.
    Garbage,
    /// The page's items in descending time (TronGrid listing only).
    OutOfOrder,
}

pub fn random_txid() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

/// A transfer of `amount` from the payer to the shop's wallet, in a block of now.
pub fn transfer_to(amount: Money, confirmed: bool) -> ChainTransfer {
    ChainTransfer {
        txid: random_txid(),
        from: PAYER.into(),
        to: super::WALLET.into(),
        amount,
        block_time: telebot::domain::now_ms(),
        block: 0,
        confirmed,
    }
}

/// A USDT transfer as the loopback chain holds it.
#[derive(Debug, Clone)]
pub struct ChainTransfer {
    pub txid: String,
    pub from: String,
    pub to: String,
    pub amount: Money,
    pub block_time: i64,
    pub block: i64,
    pub confirmed: bool,
}

#[derive(Default)]
struct TgState {
    transfers: Vec<ChainTransfer>,
    faults: VecDeque<Fault>,
    requests: Vec<(String, Option<String>)>,
    page_limit: Option<usize>,
    /// Transfers the index lists only from this time on (Unix ms), as TronGrid does when it
    /// indexes late; the others are listed at once.
    listed_from: std::collections::HashMap<String, i64>,
}

/// TronGrid v1: `GET /v1/accounts/{address}/transactions/trc20`.
#[derive(Clone)]
pub struct TronGrid {
    pub url: String,
    state: Arc<Mutex<TgState>>,
}

impl TronGrid {
    pub async fn start() -> TronGrid {
        let state = Arc::new(Mutex::new(TgState::default()));
        let app = Router::new()
            .route("/v1/accounts/{address}/transactions/trc20", get(tg_listing))
            .with_state(state.clone());
        let url = serve(app).await;
        TronGrid { url, state }
    }

    pub fn push(&self, t: ChainTransfer) {
        self.state.lock().unwrap().transfers.push(t);
    }

    /// Adds a transfer that the listings show only `lag` after its block time (late indexing).
    pub fn push_indexed_late(&self, t: ChainTransfer, lag: Duration) {
        let mut s = self.state.lock().unwrap();
        s.listed_from
            .insert(t.txid.clone(), t.block_time + lag.as_millis() as i64);
        s.transfers.push(t);
    }

    /// Marks a transfer confirmed (it moves from the unconfirmed to the confirmed listing).
    pub fn confirm(&self, txid: &str) {
        for t in self
            .state
            .lock()
            .unwrap()
            .transfers
            .iter_mut()
            .filter(|t| t.txid == txid)
        {
            t.confirmed = true;
        }
    }

    pub fn fail_next(&self, fault: Fault, times: usize) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..times {
            s.faults.push_back(fault.clone());
        }
    }

    pub fn pending_faults(&self) -> usize {
        self.state.lock().unwrap().faults.len()
    }

    /// Smaller pages, to exercise fingerprint paging.
    pub fn set_page_limit(&self, limit: usize) {
        self.state.lock().unwrap().page_limit = Some(limit);
    }

    /// Query strings and API keys of the requests so far.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn tg_listing(
    State(state): State<Arc<Mutex<TgState>>>,
    axum::extract::Path(address): axum::extract::Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        let key = headers
            .get("TRON-PRO-API-KEY")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        s.requests.push((serde_urlencoded(&q), key));
        let fault = s.faults.pop_front();
        assert_eq!(q.get("only_to").map(String::as_str), Some("true"));
        assert_eq!(q.get("contract_address").map(String::as_str), Some(USDT));
        assert_eq!(
            q.get("order_by").map(String::as_str),
            Some("block_timestamp,asc")
        );
        let min: i64 = q
            .get("min_timestamp")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let limit: usize = q
            .get("limit")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
            .min(s.page_limit.unwrap_or(200));
        let start: usize = q
            .get("fingerprint")
            .and_then(|f| f.strip_prefix("fp"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut matching: Vec<&ChainTransfer> = s
            .transfers
            .iter()
            .filter(|t| t.to == address && t.block_time >= min)
            .filter(|t| {
                s.listed_from
                    .get(&t.txid)
                    .is_none_or(|from| telebot::domain::now_ms() >= *from)
            })
            .filter(
                |t| match (q.get("only_confirmed"), q.get("only_unconfirmed")) {
                    (Some(_), _) => t.confirmed,
                    (_, Some(_)) => !t.confirmed,
                    _ => true,
                },
            )
            .collect();
        matching.sort_by_key(|t| t.block_time);
        let page: Vec<&ChainTransfer> = matching.iter().skip(start).take(limit).copied().collect();
        let more = start + page.len() < matching.len();
        let mut data: Vec<Value> = page
            .iter()
            .map(|t| {
                json!({
                    "transaction_id": t.txid,
                    "token_info": {"symbol": "USDT", "address": USDT, "decimals": 6, "name": "Tether USD"},
                    "block_timestamp": t.block_time,
                    "from": t.from,
                    "to": t.to,
                    "type": "Transfer",
                    "value": t.amount.micros().to_string(),
                })
            })
            .collect();
        if matches!(fault, Some(Fault::OutOfOrder)) && data.len() > 1 {
            data.reverse();
        }
        let mut meta = json!({"at": telebot::domain::now_ms(), "page_size": data.len()});
        if more {
            let fp = format!("fp{}", start + page.len());
            meta["fingerprint"] = json!(fp);
            meta["links"] = json!({"next": format!("https://api.trongrid.io/v1/accounts/{address}/transactions/trc20?fingerprint={fp}")});
        }
        (
            fault,
            json!({"data": data, "success": true, "meta": meta}).to_string(),
        )
    };
    respond(fault, body).await
}

fn serde_urlencoded(q: &BTreeMap<String, String>) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn respond(fault: Option<Fault>, body: String) -> Response {
    match fault {
        None | Some(Fault::OutOfOrder) => json_response(StatusCode::OK, body),
        Some(Fault::TronGridError(code)) => json_response(
            StatusCode::from_u16(code).unwrap(),
            include_str!("../../data/wire/trongrid-error-403.json").to_owned(),
        ),
        Some(Fault::NodeError) => json_response(
            StatusCode::OK,
            r#"{"Error":"class org.tron.core.exception.TooBigTransactionException : too busy"}"#
                .to_owned(),
        ),
        Some(Fault::ServerError) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response()
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            json_response(StatusCode::OK, body)
        }
        Some(Fault::Truncated) => {
            let half = body.len() / 2;
            json_response(StatusCode::OK, body[..half].to_owned())
        }
        Some(Fault::Garbage) => {
            json_response(StatusCode::OK, "<html>502 Bad Gateway</html>".to_owned())
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

#[derive(Default)]
struct FnState {
    head: i64,
    solid: i64,
    head_time: i64,
    blocks: BTreeMap<i64, Vec<ChainTransfer>>,
    /// Times of blocks made with a time of their own; the others are 3 s apart back from the
    /// head.
    times: BTreeMap<i64, i64>,
    faults: VecDeque<Fault>,
    /// Faults for one block's transaction infos only.
    block_faults: BTreeMap<i64, usize>,
    block_requests: Vec<i64>,
}

impl FnState {
    fn time_of(&self, num: i64) -> i64 {
        match self.times.get(&num) {
            Some(t) => *t,
            None => {
                // 3 s a block back from the nearest later block with a time of its own
                let (from, time) = self
                    .times
                    .range(num..)
                    .next()
                    .map(|(n, t)| (*n, *t))
                    .unwrap_or((self.head, self.head_time));
                time - (from - num) * 3000
            }
        }
    }
}

/// A TRON full node: `/wallet/getnowblock`, `/walletsolidity/getnowblock`,
/// `/wallet/getblockbynum`, `/wallet/gettransactioninfobyblocknum`.
#[derive(Clone)]
pub struct FullNode {
    pub url: String,
    state: Arc<Mutex<FnState>>,
}

impl FullNode {
    /// A chain whose head is `head`, solidified up to `head - 19`.
    pub async fn start(head: i64) -> FullNode {
        let state = Arc::new(Mutex::new(FnState {
            head,
            solid: head - 19,
            head_time: telebot::domain::now_ms(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/wallet/getnowblock", post(fn_head))
            .route("/walletsolidity/getnowblock", post(fn_solid))
            .route("/wallet/getblockbynum", post(fn_block_by_num))
            .route("/wallet/gettransactioninfobyblocknum", post(fn_txinfo))
            .with_state(state.clone());
        let url = serve(app).await;
        FullNode { url, state }
    }

    /// Adds a transfer in a new block at the head (and solidifies up to `head - 19`).
    pub fn push_block(&self, mut t: ChainTransfer) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.head += 1;
        s.solid = s.head - 19;
        s.head_time = telebot::domain::now_ms();
        t.block = s.head;
        t.block_time = s.head_time;
        let head = s.head;
        let time = s.head_time;
        s.times.insert(head, time);
        s.blocks.entry(head).or_default().push(t);
        head
    }

    /// Moves the head (empty blocks) and the solidified head with it.
    pub fn advance(&self, blocks: i64) {
        let mut s = self.state.lock().unwrap();
        s.head += blocks;
        s.solid = s.head - 19;
        s.head_time = telebot::domain::now_ms();
    }

    /// Appends blocks in one step, so a poll sees all of them or none. Each entry is the time
    /// since the previous block (over 3 s: the chain skipped slots) and the transfer the block
    /// holds, if any. Returns the new blocks' numbers.
    pub fn append(&self, blocks: Vec<(i64, Option<ChainTransfer>)>) -> Vec<i64> {
        let mut s = self.state.lock().unwrap();
        let mut numbers = Vec::new();
        for (gap_ms, transfer) in blocks {
            let time = s.time_of(s.head) + gap_ms;
            s.head += 1;
            s.head_time = time;
            let head = s.head;
            s.times.insert(head, time);
            if let Some(mut t) = transfer {
                t.block = head;
                t.block_time = time;
                s.blocks.entry(head).or_default().push(t);
            }
            numbers.push(head);
        }
        s.solid = s.head - 19;
        numbers
    }

    /// Time of block `num` as the node reports it.
    pub fn block_time(&self, num: i64) -> i64 {
        self.state.lock().unwrap().time_of(num)
    }

    pub fn fail_next(&self, fault: Fault, times: usize) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..times {
            s.faults.push_back(fault.clone());
        }
    }

    /// The next `times` requests for block `num`'s transaction infos fail with HTTP 500.
    pub fn fail_block(&self, num: i64, times: usize) {
        self.state.lock().unwrap().block_faults.insert(num, times);
    }

    pub fn pending_faults(&self) -> usize {
        self.state.lock().unwrap().faults.len()
    }

    pub fn block_requests(&self) -> Vec<i64> {
        self.state.lock().unwrap().block_requests.clone()
    }
}

fn block_json(number: i64, time: i64) -> String {
    let sample: Value =
        serde_json::from_str(include_str!("../../data/wire/fullnode-getnowblock.json")).unwrap();
    let mut b = sample;
    b["block_header"]["raw_data"]["number"] = json!(number);
    b["block_header"]["raw_data"]["timestamp"] = json!(time);
    b.to_string()
}

async fn fn_head(State(state): State<Arc<Mutex<FnState>>>) -> Response {
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        (s.faults.pop_front(), block_json(s.head, s.head_time))
    };
    respond(fault, body).await
}

async fn fn_solid(State(state): State<Arc<Mutex<FnState>>>) -> Response {
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        let time = s.time_of(s.solid);
        (s.faults.pop_front(), block_json(s.solid, time))
    };
    respond(fault, body).await
}

async fn fn_block_by_num(State(state): State<Arc<Mutex<FnState>>>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).expect("JSON request body");
    let num = v["num"].as_i64().expect("num");
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        let fault = s.faults.pop_front();
        let body = if num < 0 || num > s.head {
            "{}".to_owned()
        } else {
            block_json(num, s.time_of(num))
        };
        (fault, body)
    };
    respond(fault, body).await
}

fn account_topic(address: &str) -> String {
    let a = TronAddress::parse(address).unwrap();
    format!("{:0>64}", a.account_hex())
}

async fn fn_txinfo(State(state): State<Arc<Mutex<FnState>>>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).expect("JSON request body");
    let num = v["num"].as_i64().expect("num");
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        s.block_requests.push(num);
        let fault = match s.block_faults.get_mut(&num) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Some(Fault::ServerError)
            }
            _ => s.faults.pop_front(),
        };
        let body = if num <= 0 || num > s.head {
            "{}".to_owned()
        } else {
            let sample: Value = serde_json::from_str(include_str!(
                "../../data/wire/fullnode-txinfo-by-block.json"
            ))
            .unwrap();
            let infos: Vec<Value> = s
                .blocks
                .get(&num)
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            let mut info = sample[0].clone();
                            info["id"] = json!(t.txid);
                            info["blockNumber"] = json!(num);
                            info["blockTimeStamp"] = json!(t.block_time);
                            info["log"][0]["topics"][1] = json!(account_topic(&t.from));
                            info["log"][0]["topics"][2] = json!(account_topic(&t.to));
                            info["log"][0]["data"] = json!(format!("{:064x}", t.amount.micros()));
                            info
                        })
                        .collect()
                })
                .unwrap_or_default();
            if infos.is_empty() {
                "{}".to_owned()
            } else {
                Value::Array(infos).to_string()
            }
        };
        (fault, body)
    };
    respond(fault, body).await
}

pub fn transfer_topic() -> &'static str {
    TRANSFER_TOPIC
}
