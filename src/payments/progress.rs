//! How far each chain scanner has read, and how it is doing.
//!
//! A scanner's position is the block time (Unix ms) up to which it has read what its source
//! listed when it read. A source may list a transfer some time after its block (TronGrid indexes
//! late, by up to `tron.resume_overlap`, which is why each poll reads that much again), so each
//! scanner registers the margin its source needs: its position minus that margin is the block
//! time before which nothing new can still appear. An order is expired only once every scanner's
//! position, its margin taken off, has passed the end of the order's window, so a transfer made
//! in time is never mistaken for a late one because a scanner or its source was behind (or the
//! service was down when the window ended).

use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

use crate::domain::now_ms;

/// What operators see about one scanner.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// Block time read up to (Unix ms).
    pub position: i64,
    /// Latest block (or listing time) the source reported.
    pub head: Option<i64>,
    /// Persisted cursor (block number or Unix ms, per source).
    pub cursor: Option<i64>,
    pub last_error: Option<String>,
    pub last_ok_at: Option<i64>,
    pub errors: u64,
    /// When the scanner registered (its first start), Unix ms.
    pub registered_at: i64,
    /// How long after its block time a transfer may still first appear in this source's
    /// listing (ms): the TronGrid scanner's resume overlap; 0 for the full node, whose blocks
    /// are read whole.
    pub indexing_margin_ms: i64,
}

#[derive(Clone, Default)]
pub struct ChainProgress {
    sources: Arc<DashMap<String, SourceStatus>>,
}

impl ChainProgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a scanner that has not read anything yet, with its source's indexing margin
    /// (see the module doc). A restarted scanner keeps its status and takes the margin given.
    pub fn register(&self, source: &str, indexing_margin_ms: i64) {
        self.sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceStatus {
                registered_at: now_ms(),
                ..Default::default()
            })
            .indexing_margin_ms = indexing_margin_ms.max(0);
        // exported from the start: until its first poll a scanner has read nothing, so its lag
        // is the whole time since the epoch, which any lag alert treats as behind
        let position = self.sources.get(source).map_or(0, |e| e.position);
        metrics::gauge!("scanner_lag_seconds", "chain" => super::CHAIN, "source" => source.to_owned())
            .set(((now_ms() - position).max(0) as f64) / 1000.0);
    }

    /// Scanners without a successful poll for longer than `threshold_ms`, with what is known.
    pub fn stalled(&self, threshold_ms: i64) -> Vec<String> {
        let now = now_ms();
        self.statuses()
            .into_iter()
            .filter(|(_, s)| now - s.last_ok_at.unwrap_or(s.registered_at) > threshold_ms)
            .map(|(name, s)| {
                let since = (now - s.last_ok_at.unwrap_or(s.registered_at)) / 1000;
                match s.last_error {
                    Some(e) => format!(
                        "scanner {name} stalled: no successful poll for {since}s (last error: {e})"
                    ),
                    None => format!("scanner {name} stalled: no successful poll for {since}s"),
                }
            })
            .collect()
    }

    /// `source` has read everything up to block time `at`.
    pub fn advance(&self, source: &str, at: i64, head: Option<i64>, cursor: Option<i64>) {
        let mut e = self.sources.entry(source.to_owned()).or_default();
        e.position = e.position.max(at);
        if head.is_some() {
            e.head = head;
        }
        if cursor.is_some() {
            e.cursor = cursor;
        }
        e.last_ok_at = Some(now_ms());
        e.last_error = None;
        metrics::gauge!("scanner_lag_seconds", "chain" => super::CHAIN, "source" => source.to_owned())
            .set(((now_ms() - e.position).max(0) as f64) / 1000.0);
    }

    pub fn failed(&self, source: &str, error: String) {
        let mut e = self.sources.entry(source.to_owned()).or_default();
        e.errors += 1;
        e.last_error = Some(error);
        metrics::gauge!("scanner_lag_seconds", "chain" => super::CHAIN, "source" => source.to_owned())
            .set(((now_ms() - e.position).max(0) as f64) / 1000.0);
    }

    /// The block time before which no scanner can still find a new transfer: the least of every
    /// scanner's position minus its indexing margin. `None` without scanners (nothing to wait
    /// for). An order whose window ends after it may still be paid by a transfer made in time.
    pub fn watermark(&self) -> Option<i64> {
        self.sources
            .iter()
            .map(|e| {
                e.value()
                    .position
                    .saturating_sub(e.value().indexing_margin_ms)
            })
            .min()
    }

    /// Every scanner, for readiness and the dashboard.
    pub fn statuses(&self) -> Vec<(String, SourceStatus)> {
        let mut v: Vec<(String, SourceStatus)> = self
            .sources
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::ChainProgress;

    #[test]
    fn the_watermark_waits_for_each_source_s_indexing_margin() {
        let p = ChainProgress::new();
        assert_eq!(p.watermark(), None, "no scanner: nothing to wait for");
        p.register("trongrid", 120_000);
        p.register("fullnode", 0);
        p.advance("trongrid", 1_000_000, None, None);
        p.advance("fullnode", 2_000_000, None, None);
        // TronGrid may still list a transfer of up to two minutes before its position
        assert_eq!(p.watermark(), Some(880_000));
        p.advance("trongrid", 5_000_000, None, None);
        assert_eq!(
            p.watermark(),
            Some(2_000_000),
            "the full node is now the one behind"
        );
    }
}
