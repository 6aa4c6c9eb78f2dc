//! The TronGrid scanner (payments subsystem): polls
//! `GET /v1/accounts/{wallet}/transactions/trc20` for every receiving wallet and feeds the
//! transfers to the payment pipeline.
//!
//! Each wallet has a cursor (the latest block time read), persisted and resumed with
//! `tron.resume_overlap`; a cursor moves only after every page of a listing was read, so a fault
//! never skips data. With `confirmations = "seen"` every listed transfer counts; otherwise the
//! confirmed listing (`only_confirmed`) pays orders and the unconfirmed one only tells customers
//! their payment was seen. TronGrid reports no block numbers, so a block count is treated like
//! "solidified" here. Faults back off with jitter and never stop the actor.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::periodic::{FollowGate, Turn};
use crate::config::{Confirmations, Secret};
use crate::domain::{TronAddress, now_ms};
use crate::messages::scanners::ScanFault;
use crate::messages::scanners::{TronGridMsg, TronGridPoll};
use crate::payments::Payments;
use crate::payments::progress::ChainProgress;
use crate::payments::scan::{Pacing, fetch};
use crate::payments::tron::{LogIndexer, parse_trongrid_page};
use crate::supervision::Leadership;

pub const SOURCE: &str = "trongrid";
/// Items per page (TronGrid's maximum).
const PAGE_LIMIT: usize = 200;
/// A listing longer than this many pages is continued at the next poll (from its last item,
/// without the resume overlap). A listing whose pages all share the block time it started from
/// is read on past this, so every poll moves forward.
const MAX_PAGES: usize = 50;
/// How far back the unconfirmed listing looks.
const UNCONFIRMED_LOOKBACK_MS: i64 = 10 * 60 * 1000;
/// Time until a TRON block is irreversible (about 19 blocks of 3 s), with a margin.
pub const SOLIDIFY_MS: i64 = 60_000;

#[derive(Clone)]
pub struct TronGridScanner {
    pub base_url: String,
    pub api_key: Secret,
    pub contract: TronAddress,
    pub wallets: Vec<TronAddress>,
    pub poll_interval: Duration,
    pub confirmations: Confirmations,
    pub overlap_ms: i64,
    /// Where a wallet without a saved cursor starts (how far back from now).
    pub initial_lookback_ms: i64,
    pub request_timeout: Duration,
    pub max_backoff: Duration,
    pub payments: Payments,
    pub progress: ChainProgress,
    /// Scans only while this instance leads.
    pub leader: Leadership,
}

/// Which TronGrid listing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// Everything (`confirmations = "seen"`): every transfer counts.
    All,
    /// `only_confirmed`: transfers that pay orders.
    Confirmed,
    /// `only_unconfirmed`: transfers that are only announced as seen.
    Unconfirmed,
}

/// How a wallet's last listing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Cut at the page limit: the next poll continues from the cursor itself.
    Cut,
    /// Read to its end by the poll that started at this time (Unix ms).
    CompleteAt(i64),
}

pub struct TronGridState {
    client: reqwest::Client,
    cursors: HashMap<String, i64>,
    /// How each wallet's last listing ended: where the next poll starts reading.
    resume: HashMap<String, Resume>,
    pacing: Pacing,
    job: super::Job,
    /// Idle while another instance leads; its cursors are read again on taking over.
    gate: FollowGate,
}

fn cursor_key(wallet: &str) -> String {
    format!("tron:{SOURCE}:{wallet}")
}

impl Actor for TronGridScanner {
    type Msg = TronGridMsg;
    type State = TronGridState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<TronGridMsg>,
        _: (),
    ) -> Result<TronGridState, ActorProcessingErr> {
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .user_agent(concat!("telebot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut cursors = HashMap::new();
        for w in &self.wallets {
            let w = w.to_string();
            // every poll reads from the cursor minus the overlap, resumed ones included
            let start = match self.payments.store.scan_cursor(&cursor_key(&w)).await? {
                Some(saved) => saved,
                None => now_ms() - self.initial_lookback_ms,
            };
            cursors.insert(w, start);
        }
        self.progress.register(SOURCE, self.overlap_ms);
        let _ = myself.cast(TronGridMsg::Tick);
        Ok(TronGridState {
            client,
            cursors,
            resume: HashMap::new(),
            pacing: Pacing::new(self.poll_interval, self.max_backoff),
            job: super::Job::default(),
            gate: FollowGate::default(),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<TronGridMsg>,
        state: &mut TronGridState,
    ) -> Result<(), ActorProcessingErr> {
        state.job.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<TronGridMsg>,
        msg: TronGridMsg,
        state: &mut TronGridState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TronGridMsg::Tick => {
                match state.gate.turn(self.leader.is_leader()) {
                    // another instance scans; look again later, and resume from the cursors it
                    // saved when this one takes over
                    Turn::Follow => {
                        myself.send_after(self.poll_interval, || TronGridMsg::Tick);
                        return Ok(());
                    }
                    Turn::TakeOver => self.reload_cursors(state).await?,
                    Turn::Lead => {}
                }
                let job = self.clone();
                let client = state.client.clone();
                let cursors = state.cursors.clone();
                let resume = state.resume.clone();
                let me = myself.clone();
                state.job.start(async move {
                    let report = job.poll(&client, cursors, &resume).await;
                    let _ = me.cast(TronGridMsg::Polled(report));
                });
            }
            TronGridMsg::Polled(report) => {
                state.job.done();
                let truncated = !report.cut.is_empty();
                for (wallet, cursor) in &report.cursors {
                    let ended = if report.cut.contains(wallet) {
                        Resume::Cut
                    } else {
                        Resume::CompleteAt(report.started_at)
                    };
                    state.resume.insert(wallet.clone(), ended);
                    state.cursors.insert(wallet.clone(), *cursor);
                    if let Err(e) = self
                        .payments
                        .store
                        .save_scan_cursor(&cursor_key(wallet), *cursor)
                        .await
                    {
                        tracing::warn!(error = %e, "cursor not saved; it is resumed with overlap");
                    }
                }
                let delay = match report.fault {
                    None => {
                        let min_cursor = state.cursors.values().copied().min();
                        // a listing cut short is read only up to just before its cursor (more
                        // items of that very time may follow on the next page), not up to now
                        let cut_floor = report
                            .cut
                            .iter()
                            .filter_map(|w| state.cursors.get(w))
                            .min()
                            .map(|c| c - 1);
                        let read_up_to = (report.started_at - self.confirmed_delay())
                            .min(cut_floor.unwrap_or(i64::MAX));
                        self.progress.advance(
                            SOURCE,
                            read_up_to,
                            Some(report.started_at),
                            min_cursor,
                        );
                        state.pacing.after_success(truncated)
                    }
                    Some(fault) => state.pacing.after_fault(SOURCE, &fault, &self.progress),
                };
                myself.send_after(delay, || TronGridMsg::Tick);
            }
        }
        Ok(())
    }
}

impl TronGridScanner {
    /// How long after its block a transfer may still appear in the listing that is read:
    /// confirmation takes about a minute unless every listed transfer counts.
    fn confirmed_delay(&self) -> i64 {
        if self.confirmations == Confirmations::Seen {
            0
        } else {
            SOLIDIFY_MS
        }
    }

    /// Where a wallet's listing starts. The overlap re-reads what TronGrid may have indexed
    /// late, within `tron.resume_overlap` of its block time (plus the confirmation delay). A
    /// listing read to its end at `s` has seen everything older than that, so only the newer
    /// part is read again: a wallet whose last transfer is old is read from its cursor, not from
    /// the cursor minus the overlap at every poll (which, after a flood, would read its last
    /// thousands of items again and again). A listing that was cut continues where it stopped.
    fn listing_start(&self, cursor: i64, resume: Option<Resume>) -> i64 {
        match resume {
            Some(Resume::Cut) => cursor,
            Some(Resume::CompleteAt(s)) => {
                let settled = s - self.overlap_ms - self.confirmed_delay();
                (cursor - self.overlap_ms).max(settled.min(cursor))
            }
            None => cursor - self.overlap_ms,
        }
    }

    /// Takes the cursors the leading instance saved, on taking over from it.
    async fn reload_cursors(&self, state: &mut TronGridState) -> Result<(), ActorProcessingErr> {
        // how this instance's listings ended says nothing about the leader's cursors
        state.resume.clear();
        for (wallet, cursor) in state.cursors.iter_mut() {
            if let Some(saved) = self.payments.store.scan_cursor(&cursor_key(wallet)).await? {
                *cursor = saved;
            }
        }
        Ok(())
    }

    /// One poll over every wallet. Runs outside the actor.
    async fn poll(
        &self,
        client: &reqwest::Client,
        cursors: HashMap<String, i64>,
        resume: &HashMap<String, Resume>,
    ) -> TronGridPoll {
        let mut report = TronGridPoll {
            started_at: now_ms(),
            ..Default::default()
        };
        for wallet in &self.wallets {
            let key = wallet.to_string();
            let cursor = cursors.get(&key).copied().unwrap_or(report.started_at);
            let confirmed_only = self.confirmations != Confirmations::Seen;
            let listing = if confirmed_only {
                Listing::Confirmed
            } else {
                Listing::All
            };
            let from = self.listing_start(cursor, resume.get(&key).copied());
            match self.read_listing(client, wallet, from, listing).await {
                Ok((latest, complete)) => {
                    if !complete {
                        report.cut.insert(key.clone());
                    }
                    report
                        .cursors
                        .insert(key, latest.unwrap_or(cursor).max(cursor));
                }
                Err(f) => {
                    report.fault = Some(f);
                    return report;
                }
            }
            if confirmed_only
                && let Err(f) = self
                    .read_listing(
                        client,
                        wallet,
                        report.started_at - UNCONFIRMED_LOOKBACK_MS,
                        Listing::Unconfirmed,
                    )
                    .await
            {
                report.fault = Some(f);
                return report;
            }
        }
        report
    }

    /// Reads one listing from `min_timestamp`, page by page, and ingests what it finds.
    /// Returns the latest block time read, and whether the listing was read to its end (a long
    /// one is continued at the next poll).
    async fn read_listing(
        &self,
        client: &reqwest::Client,
        wallet: &TronAddress,
        min_timestamp: i64,
        listing: Listing,
    ) -> Result<(Option<i64>, bool), ScanFault> {
        let url = format!(
            "{}/v1/accounts/{}/transactions/trc20",
            self.base_url.trim_end_matches('/'),
            wallet
        );
        let mut fingerprint: Option<String> = None;
        let mut latest: Option<i64> = None;
        let mut indexer = LogIndexer::default();
        for page_number in 0.. {
            if page_number >= MAX_PAGES && latest.is_some_and(|t| t > min_timestamp) {
                // more pages than one poll reads: what was read is complete up to `latest`
                break;
            }
            let mut query: Vec<(&str, String)> = vec![
                ("only_to", "true".into()),
                ("contract_address", self.contract.to_string()),
                ("min_timestamp", min_timestamp.max(0).to_string()),
                ("order_by", "block_timestamp,asc".into()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            match listing {
                Listing::All => {}
                Listing::Confirmed => query.push(("only_confirmed", "true".into())),
                Listing::Unconfirmed => query.push(("only_unconfirmed", "true".into())),
            }
            if let Some(f) = &fingerprint {
                query.push(("fingerprint", f.clone()));
            }
            let mut request = client.get(&url).query(&query);
            if self.api_key.is_set() {
                request = request.header("TRON-PRO-API-KEY", self.api_key.expose());
            }
            let body = fetch(request).await?;
            let page = parse_trongrid_page(&body, wallet, &self.contract, latest, &mut indexer)?;
            let confirmed = listing != Listing::Unconfirmed;
            for t in &page.transfers {
                self.payments
                    .ingest_from_scanner(&t.to_new(confirmed, SOURCE))
                    .await?;
            }
            latest = page.last_time.or(latest);
            match page.fingerprint {
                Some(f) if page.items >= PAGE_LIMIT => fingerprint = Some(f),
                _ => return Ok((latest, true)),
            }
        }
        Ok((latest, false))
    }
}
