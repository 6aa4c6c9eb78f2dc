//! Restart strategy: which children restart together, how many restarts a window allows, and the
//! exponential backoff between them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::SupervisionConfig;

/// Which children restart when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the failed child restarts (the default).
    OneForOne,
    /// Every child restarts, for children that only make sense together.
    OneForAll,
}

/// The limits a supervisor applies to its children.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub strategy: Strategy,
    /// Restarts allowed within `window`; one more and the supervisor escalates to its parent.
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    pub fn from_config(c: &SupervisionConfig) -> Self {
        RestartPolicy {
            strategy: Strategy::OneForOne,
            max_restarts: c.max_restarts,
            window: c.restart_window,
            backoff_initial: c.backoff_initial,
            backoff_max: c.backoff_max,
        }
    }

    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay.
    Restart(Duration),
    /// The budget is spent: give up and let the parent decide.
    Escalate,
}

/// The recent restarts of one child, for deciding the next one.
#[derive(Debug, Default, Clone)]
pub struct RestartBudget {
    history: VecDeque<Instant>,
}

impl RestartBudget {
    /// Records a failure at `now` and decides: restart with backoff, or escalate when this would
    /// be restart number `max_restarts + 1` inside the window.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> Decision {
        while let Some(&first) = self.history.front() {
            if now.duration_since(first) > policy.window {
                self.history.pop_front();
            } else {
                break;
            }
        }
        if self.history.len() as u32 >= policy.max_restarts {
            return Decision::Escalate;
        }
        self.history.push_back(now);
        let exponent = (self.history.len() as u32).saturating_sub(1).min(20);
        let delay = policy
            .backoff_initial
            .saturating_mul(1u32 << exponent)
            .min(policy.backoff_max);
        Decision::Restart(delay)
    }

    /// Restarts counted in the current window.
    pub fn recent(&self) -> usize {
        self.history.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            window: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_escalates() {
        let p = policy();
        let mut b = RestartBudget::default();
        let t = Instant::now();
        assert_eq!(
            b.on_failure(&p, t),
            Decision::Restart(Duration::from_millis(100))
        );
        assert_eq!(
            b.on_failure(&p, t),
            Decision::Restart(Duration::from_millis(200))
        );
        assert_eq!(
            b.on_failure(&p, t),
            Decision::Restart(Duration::from_millis(300))
        );
        assert_eq!(b.on_failure(&p, t), Decision::Escalate);
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let p = policy();
        let mut b = RestartBudget::default();
        let t = Instant::now();
        for _ in 0..3 {
            b.on_failure(&p, t);
        }
        let later = t + Duration::from_secs(11);
        assert_eq!(
            b.on_failure(&p, later),
            Decision::Restart(Duration::from_millis(100))
        );
        assert_eq!(b.recent(), 1);
    }
}
