//! The full-node scanner (payments subsystem): reads every block of a TRON full node
//! (`/wallet/gettransactioninfobyblocknum`) and decodes USDT `Transfer` logs to our wallets,
//! because the TronGrid index is known to miss transfers.
//!
//! Blocks up to the confirmed tip (the head for "seen", head - N + 1 for a block count, the
//! solidified head from `/walletsolidity/getnowblock` for "solidified") are read once with
//! confirmed transfers; the cursor, persisted after every batch and resumed with overlap, is the
//! last block read completely. Newer blocks are read once more for "payment seen" notices.

use std::collections::HashSet;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::periodic::{FollowGate, Turn};
use crate::config::Confirmations;
use crate::domain::TronAddress;
use crate::messages::scanners::ScanFault;
use crate::messages::scanners::{FullNodeMsg, FullNodePoll};
use crate::payments::Payments;
use crate::payments::progress::ChainProgress;
use crate::payments::scan::{Pacing, fetch};
use crate::payments::tron::{BlockHead, WireError, parse_block_head, parse_block_transfers};
use crate::supervision::Leadership;

pub const SOURCE: &str = "fullnode";
const CURSOR_KEY: &str = "tron:fullnode";
/// TRON makes a block every 3 seconds.
pub const BLOCK_MS: i64 = 3_000;
/// Confirmed blocks read per poll before the actor takes its next message.
const BATCH: i64 = 100;
/// Unconfirmed blocks read per poll for "seen" notices.
const SEEN_BATCH: i64 = 30;

#[derive(Clone)]
pub struct FullNodeScanner {
    pub base_url: String,
    pub contract: TronAddress,
    pub wallets: HashSet<String>,
    pub poll_interval: Duration,
    pub confirmations: Confirmations,
    pub overlap_ms: i64,
    pub initial_lookback_ms: i64,
    pub request_timeout: Duration,
    pub max_backoff: Duration,
    pub payments: Payments,
    pub progress: ChainProgress,
    /// Scans only while this instance leads.
    pub leader: Leadership,
}

pub struct FullNodeState {
    client: reqwest::Client,
    /// Last block read completely (confirmed); `None` until the first head is known. A saved
    /// cursor is taken back by the resume overlap.
    cursor: Option<i64>,
    seen_upto: i64,
    pacing: Pacing,
    job: super::Job,
    /// Idle while another instance leads; its cursor is read again on taking over.
    gate: FollowGate,
}

impl Actor for FullNodeScanner {
    type Msg = FullNodeMsg;
    type State = FullNodeState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<FullNodeMsg>,
        _: (),
    ) -> Result<FullNodeState, ActorProcessingErr> {
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .user_agent(concat!("telebot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let saved = self.payments.store.scan_cursor(CURSOR_KEY).await?;
        let overlap_blocks = self.overlap_ms / BLOCK_MS;
        self.progress.register(SOURCE, 0);
        let _ = myself.cast(FullNodeMsg::Tick);
        Ok(FullNodeState {
            client,
            cursor: saved.map(|c| (c - overlap_blocks).max(0)),
            seen_upto: 0,
            pacing: Pacing::new(self.poll_interval, self.max_backoff),
            job: super::Job::default(),
            gate: FollowGate::default(),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<FullNodeMsg>,
        state: &mut FullNodeState,
    ) -> Result<(), ActorProcessingErr> {
        state.job.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<FullNodeMsg>,
        msg: FullNodeMsg,
        state: &mut FullNodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FullNodeMsg::Tick => {
                match state.gate.turn(self.leader.is_leader()) {
                    // another instance scans; look again later, and resume from the cursors it
                    // saved when this one takes over
                    Turn::Follow => {
                        myself.send_after(self.poll_interval, || FullNodeMsg::Tick);
                        return Ok(());
                    }
                    Turn::TakeOver => self.reload_cursors(state).await?,
                    Turn::Lead => {}
                }
                let job = self.clone();
                let client = state.client.clone();
                let (cursor, seen_upto) = (state.cursor, state.seen_upto);
                let me = myself.clone();
                state.job.start(async move {
                    let report = job.poll(&client, cursor, seen_upto).await;
                    let _ = me.cast(FullNodeMsg::Polled(report));
                });
            }
            FullNodeMsg::Polled(report) => {
                state.job.done();
                if let Some(c) = report.cursor {
                    state.cursor = Some(c);
                    if let Err(e) = self.payments.store.save_scan_cursor(CURSOR_KEY, c).await {
                        tracing::warn!(error = %e, "cursor not saved; it is resumed with overlap");
                    }
                }
                if let Some(s) = report.seen_upto {
                    state.seen_upto = s;
                }
                // a successful poll that read no new block keeps the position it had
                if report.fault.is_none() || report.position.is_some() {
                    let position = report.position.unwrap_or(i64::MIN);
                    self.progress
                        .advance(SOURCE, position, report.head, state.cursor);
                }
                let delay = match report.fault {
                    None => state.pacing.after_success(report.behind),
                    Some(fault) => state.pacing.after_fault(SOURCE, &fault, &self.progress),
                };
                myself.send_after(delay, || FullNodeMsg::Tick);
            }
        }
        Ok(())
    }
}

impl FullNodeScanner {
    /// Takes the cursor the leading instance saved, on taking over from it.
    async fn reload_cursors(&self, state: &mut FullNodeState) -> Result<(), ActorProcessingErr> {
        if let Some(saved) = self.payments.store.scan_cursor(CURSOR_KEY).await? {
            state.cursor = Some((saved - self.overlap_ms / BLOCK_MS).max(0));
        }
        Ok(())
    }
}

impl FullNodeScanner {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url.trim_end_matches('/'), path)
    }

    async fn head(&self, client: &reqwest::Client, path: &str) -> Result<BlockHead, ScanFault> {
        let body = fetch(
            client
                .post(self.url(path))
                .body("{}")
                .header("content-type", "application/json"),
        )
        .await?;
        Ok(parse_block_head(&body)?)
    }

    /// Reads one block's transfers and ingests ours. Returns the block's time when the block
    /// has any transaction.
    async fn block(
        &self,
        client: &reqwest::Client,
        num: i64,
        confirmed: bool,
    ) -> Result<Option<i64>, ScanFault> {
        let body = fetch(
            client
                .post(self.url("/wallet/gettransactioninfobyblocknum"))
                .header("content-type", "application/json")
                .body(format!("{{\"num\":{num}}}")),
        )
        .await?;
        let block = parse_block_transfers(&body, num, &self.contract, &self.wallets)?;
        for t in &block.transfers {
            self.payments
                .ingest_from_scanner(&t.to_new(confirmed, SOURCE))
                .await?;
        }
        Ok(block.time)
    }

    /// The time of block `num`: from its transactions when it had any (`known`), otherwise
    /// from `/wallet/getblockbynum`.
    async fn block_time(
        &self,
        client: &reqwest::Client,
        num: i64,
        known: Option<i64>,
    ) -> Result<i64, ScanFault> {
        if let Some(t) = known {
            return Ok(t);
        }
        let body = fetch(
            client
                .post(self.url("/wallet/getblockbynum"))
                .header("content-type", "application/json")
                .body(format!("{{\"num\":{num}}}")),
        )
        .await?;
        let block = parse_block_head(&body)?;
        if block.number != num {
            return Err(WireError::Malformed(format!(
                "asked for block {num}, the node answered block {}",
                block.number
            ))
            .into());
        }
        Ok(block.timestamp)
    }

    /// One poll. Runs outside the actor; reports how far it got even when it fails midway.
    async fn poll(
        &self,
        client: &reqwest::Client,
        cursor: Option<i64>,
        seen_upto: i64,
    ) -> FullNodePoll {
        let mut report = FullNodePoll::default();
        if let Err(f) = self.poll_into(client, cursor, seen_upto, &mut report).await {
            report.fault = Some(f);
        }
        report
    }

    async fn poll_into(
        &self,
        client: &reqwest::Client,
        cursor: Option<i64>,
        seen_upto: i64,
        report: &mut FullNodePoll,
    ) -> Result<(), ScanFault> {
        let head = self.head(client, "/wallet/getnowblock").await?;
        report.head = Some(head.number);
        let tip = match self.confirmations {
            Confirmations::Seen => head.number,
            Confirmations::Blocks(n) => head.number - i64::from(n) + 1,
            Confirmations::Solidified => self
                .head(client, "/walletsolidity/getnowblock")
                .await?
                .number
                .min(head.number),
        };
        // the position is the real time of the last block read, never an estimate: counting
        // back from the head at 3 s a block runs ahead of the chain when slots were skipped,
        // and a position ahead of what was read could expire an order whose payment is unread
        let start_after =
            cursor.unwrap_or_else(|| (tip - self.initial_lookback_ms / BLOCK_MS).max(0));
        let last = tip.min(start_after + BATCH);
        let mut done = start_after;
        let mut done_time = None;
        for num in (start_after + 1)..=last {
            match self.block(client, num, true).await {
                Ok(time) => {
                    done = num;
                    done_time = time;
                }
                Err(f) => {
                    if done > start_after {
                        report.cursor = Some(done);
                        report.position = self.block_time(client, done, done_time).await.ok();
                    }
                    return Err(f);
                }
            }
        }
        report.cursor = Some(done);
        report.behind = done < tip;
        // a poll that read no new block has no new position
        if done > start_after {
            report.position = Some(self.block_time(client, done, done_time).await?);
        }
        if !report.behind && self.confirmations != Confirmations::Seen {
            let from = seen_upto.max(tip) + 1;
            let to = head.number.min(from + SEEN_BATCH - 1);
            for num in from..=to {
                self.block(client, num, false).await?;
                report.seen_upto = Some(num);
            }
        }
        Ok(())
    }
}
