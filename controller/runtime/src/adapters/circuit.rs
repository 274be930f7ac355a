//! A per-foundation circuit breaker.
//!
//! `failure_threshold` consecutive failures that say the foundation is
//! unwell (Unavailable, which includes timeouts) open the circuit: calls
//! fail at once for `cooldown`, and the foundation shows as Degraded, which
//! the scheduler avoids. After the cooldown one call is let through
//! (half-open); its success closes the circuit, its failure opens it again
//! for twice as long, up to `max_cooldown`. Answers such as NotFound or
//! QuotaExceeded prove the foundation is alive and count as successes.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::watch;
use yunshu_core::error::ErrorKind;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// One trial call is allowed.
    HalfOpen,
    /// Calls fail at once.
    Open,
}

impl CircuitState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub const fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// Settings of a breaker.
#[derive(Debug, Clone, Copy)]
pub struct CircuitConfig {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// How long it stays open the first time.
    pub cooldown: Duration,
    /// The longest it stays open.
    pub max_cooldown: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

/// How much one call moves [`Circuit::error_rate`]: about the last twenty
/// calls count.
const ERROR_RATE_WEIGHT: f64 = 0.05;

#[derive(Debug)]
struct Inner {
    /// The share of recent calls the cloud failed (unavailable or timed
    /// out), each call weighing [`ERROR_RATE_WEIGHT`]; what placement's
    /// API-health score reads.
    error_rate: f64,
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    trial_in_flight: bool,
}

/// One foundation's breaker; its state is observable through [`Self::subscribe`].
#[derive(Debug)]
pub struct Circuit {
    config: CircuitConfig,
    inner: Mutex<Inner>,
    state: watch::Sender<CircuitState>,
}

/// What [`Circuit::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go ahead.
    Call,
    /// Go ahead as the half-open trial.
    Trial,
    /// Refused; the circuit is open.
    Refuse,
}

impl Circuit {
    /// A closed breaker.
    pub fn new(config: CircuitConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                error_rate: 0.0,
                failures: 0,
                open_until: None,
                cooldown: config.cooldown,
                trial_in_flight: false,
            }),
            state: watch::channel(CircuitState::Closed).0,
        }
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        *self.state.borrow()
    }

    /// Follows state changes.
    pub fn subscribe(&self) -> watch::Receiver<CircuitState> {
        self.state.subscribe()
    }

    /// Whether a call may go out now.
    pub fn admit(&self) -> Admit {
        let mut i = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match i.open_until {
            None => Admit::Call,
            Some(until) if Instant::now() < until => Admit::Refuse,
            Some(_) if i.trial_in_flight => Admit::Refuse,
            Some(_) => {
                i.trial_in_flight = true;
                self.state.send_replace(CircuitState::HalfOpen);
                Admit::Trial
            }
        }
    }

    /// The share of recent calls the cloud failed, 0 to 1 (a moving
    /// average; throttled calls do not count either way).
    pub fn error_rate(&self) -> f64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .error_rate
    }

    /// Records a call's outcome (`None`: success).
    pub fn record(&self, admitted: Admit, error: Option<ErrorKind>) {
        let mut i = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if admitted == Admit::Trial {
            i.trial_in_flight = false;
        }
        let unwell = matches!(error, Some(ErrorKind::Unavailable));
        if error != Some(ErrorKind::Throttled) {
            let sample = if unwell { 1.0 } else { 0.0 };
            i.error_rate += ERROR_RATE_WEIGHT * (sample - i.error_rate);
        }
        if !unwell {
            if error != Some(ErrorKind::Throttled) {
                i.failures = 0;
                // The trial, or a call admitted before the circuit opened,
                // came back: the foundation answers again.
                if i.open_until.is_some() {
                    i.open_until = None;
                    i.cooldown = self.config.cooldown;
                    self.state.send_replace(CircuitState::Closed);
                }
            }
            return;
        }
        i.failures += 1;
        if admitted == Admit::Trial {
            let next = (i.cooldown * 2).min(self.config.max_cooldown);
            i.cooldown = next;
            i.open_until = Some(Instant::now() + next);
            self.state.send_replace(CircuitState::Open);
        } else if i.failures >= self.config.failure_threshold && i.open_until.is_none() {
            i.open_until = Some(Instant::now() + i.cooldown);
            self.state.send_replace(CircuitState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Circuit {
        Circuit::new(CircuitConfig {
            failure_threshold: 3,
            cooldown: Duration::from_millis(50),
            max_cooldown: Duration::from_millis(400),
        })
    }

    #[test]
    fn the_error_rate_follows_recent_calls() {
        let c = breaker();
        assert!(c.error_rate().abs() < f64::EPSILON);
        for _ in 0..2 {
            c.record(c.admit(), Some(ErrorKind::Unavailable));
            c.record(c.admit(), None);
        }
        let mixed = c.error_rate();
        assert!(mixed > 0.0 && mixed < 0.2, "{mixed}");
        c.record(c.admit(), Some(ErrorKind::Throttled));
        assert!(
            (c.error_rate() - mixed).abs() < f64::EPSILON,
            "throttling is not an error"
        );
        for _ in 0..100 {
            c.record(c.admit(), None);
        }
        assert!(c.error_rate() < 0.01, "{}", c.error_rate());
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let c = breaker();
        for _ in 0..2 {
            c.record(c.admit(), Some(ErrorKind::Unavailable));
        }
        c.record(c.admit(), None);
        for _ in 0..2 {
            c.record(c.admit(), Some(ErrorKind::Unavailable));
        }
        assert_eq!(c.state(), CircuitState::Closed);
        c.record(c.admit(), Some(ErrorKind::NotFound));
        assert_eq!(
            c.state(),
            CircuitState::Closed,
            "NotFound proves it answers"
        );
        for _ in 0..3 {
            c.record(c.admit(), Some(ErrorKind::Unavailable));
        }
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.admit(), Admit::Refuse);
    }

    #[test]
    fn half_open_trial_closes_or_reopens_longer() {
        let c = breaker();
        for _ in 0..3 {
            c.record(c.admit(), Some(ErrorKind::Unavailable));
        }
        std::thread::sleep(Duration::from_millis(60));
        let trial = c.admit();
        assert_eq!(trial, Admit::Trial);
        assert_eq!(c.admit(), Admit::Refuse, "one trial at a time");
        c.record(trial, Some(ErrorKind::Unavailable));
        assert_eq!(c.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.admit(), Admit::Refuse, "the second cooldown is longer");
        std::thread::sleep(Duration::from_millis(50));
        let trial = c.admit();
        assert_eq!(trial, Admit::Trial);
        c.record(trial, None);
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.admit(), Admit::Call);
    }

    #[test]
    fn throttling_neither_opens_nor_closes() {
        let c = breaker();
        for _ in 0..10 {
            c.record(c.admit(), Some(ErrorKind::Throttled));
        }
        assert_eq!(c.state(), CircuitState::Closed);
    }
}
