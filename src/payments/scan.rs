//! What the chain scanners share: upstream requests with their faults classified, and the
//! backoff with jitter that keeps a failing source from being hammered or crash-looping.

use std::time::Duration;

use reqwest::StatusCode;

use super::tron::{WireError, trongrid_error_message};
use crate::messages::scanners::ScanFault;

impl From<WireError> for ScanFault {
    fn from(e: WireError) -> Self {
        ScanFault::new(e.kind(), e.to_string())
    }
}

/// Sends a request and returns the body of a 2xx answer; anything else is a typed fault.
/// The body is always read: TronGrid explains refusals in JSON, and a node under load answers
/// 200 with `{"Error": ...}` (the decoders catch that one).
pub async fn fetch(request: reqwest::RequestBuilder) -> Result<Vec<u8>, ScanFault> {
    let response = request.send().await.map_err(classify)?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            ScanFault::new("timeout", e.to_string())
        } else {
            ScanFault::new("malformed", format!("body cut short: {e}"))
        }
    })?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let detail = trongrid_error_message(&body)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let kind = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::FORBIDDEN => "rate_limited",
        s if s.is_server_error() => "server_error",
        _ => "http_error",
    };
    Err(ScanFault::new(kind, format!("HTTP {status}: {detail}")))
}

fn classify(e: reqwest::Error) -> ScanFault {
    if e.is_timeout() {
        ScanFault::new("timeout", e.to_string())
    } else if e.is_connect() {
        ScanFault::new("connect", e.to_string())
    } else {
        ScanFault::new("http_error", e.to_string())
    }
}

/// Delay before the next attempt after `failures` consecutive faults: exponential from `base`,
/// capped at `max`, with "equal jitter" (half fixed, half random) so many instances spread out.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.min(16)).min(max);
    let half = exp / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// When a scanner polls next: at once while more is waiting, after the poll interval when it
/// has caught up, and after a growing, jittered backoff while its source keeps failing.
#[derive(Debug, Clone)]
pub struct Pacing {
    poll_interval: Duration,
    max_backoff: Duration,
    /// Polls failed in a row.
    failures: u32,
}

impl Pacing {
    pub fn new(poll_interval: Duration, max_backoff: Duration) -> Self {
        Pacing {
            poll_interval,
            max_backoff,
            failures: 0,
        }
    }

    /// A poll worked: the failures are forgotten.
    pub fn after_success(&mut self, more_waiting: bool) -> Duration {
        self.failures = 0;
        if more_waiting {
            Duration::ZERO
        } else {
            self.poll_interval
        }
    }

    /// A poll failed: records it (metric, log line, the scanner's status) and backs off.
    pub fn after_fault(
        &mut self,
        source: &str,
        fault: &ScanFault,
        progress: &super::progress::ChainProgress,
    ) -> Duration {
        self.failures += 1;
        metrics::counter!("scanner_errors_total", "chain" => super::CHAIN, "kind" => fault.kind)
            .increment(1);
        let delay = backoff(self.failures, self.poll_interval, self.max_backoff);
        tracing::warn!(source, kind = fault.kind, error = %fault.message, failures = self.failures, ?delay, "scan failed; backing off");
        progress.failed(source, fault.to_string());
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_backs_off_while_failing_and_forgets_on_success() {
        let progress = super::super::progress::ChainProgress::default();
        let base = Duration::from_millis(100);
        let mut p = Pacing::new(base, Duration::from_secs(60));
        assert_eq!(
            p.after_success(true),
            Duration::ZERO,
            "more waiting: at once"
        );
        assert_eq!(p.after_success(false), base);
        let fault = ScanFault::new("timeout", "slow");
        let delays: Vec<Duration> = (0..6)
            .map(|_| p.after_fault("t", &fault, &progress))
            .collect();
        // the backoff doubles, jittered into its upper half: the sixth wait is at least 16x base
        assert!(delays[5] >= base * 16, "{delays:?}");
        assert_eq!(
            p.after_success(false),
            base,
            "one success resets the backoff"
        );
        assert!(p.after_fault("t", &fault, &progress) <= base * 2);
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let first = backoff(1, base, max);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        for n in 0..40 {
            let d = backoff(n, base, max);
            assert!(d <= max && d >= Duration::from_millis(50), "{n}: {d:?}");
        }
        assert!(backoff(30, base, max) >= max / 2);
    }
}
