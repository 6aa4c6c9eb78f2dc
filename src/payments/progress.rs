//! How far each chain scanner has read, and how it is doing.
//!
//! A scanner's position is the block time (Unix ms) up to which it has read everything. An order
//! is expired only once every scanner has read past the end of its window, so a transfer made in
//! time is never mistaken for a late one because a scanner was behind (or the service was down
//! when the window ended).

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
}

#[derive(Clone, Default)]
pub struct ChainProgress {
    sources: Arc<DashMap<String, SourceStatus>>,
}

impl ChainProgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a scanner that has not read anything yet.
    pub fn register(&self, source: &str) {
        self.sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceStatus {
                registered_at: now_ms(),
                ..Default::default()
            });
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
        metrics::gauge!("scanner_lag_seconds", "chain" => "tron", "source" => source.to_owned())
            .set(((now_ms() - e.position).max(0) as f64) / 1000.0);
    }

    pub fn failed(&self, source: &str, error: String) {
        let mut e = self.sources.entry(source.to_owned()).or_default();
        e.errors += 1;
        e.last_error = Some(error);
        metrics::gauge!("scanner_lag_seconds", "chain" => "tron", "source" => source.to_owned())
            .set(((now_ms() - e.position).max(0) as f64) / 1000.0);
    }

    /// The block time every scanner has read past; `None` without scanners (nothing to wait for).
    pub fn watermark(&self) -> Option<i64> {
        self.sources.iter().map(|e| e.value().position).min()
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
