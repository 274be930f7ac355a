//! A per-foundation token bucket in which user-initiated calls go first.
//!
//! Tokens refill at `requests_per_second` up to `burst`. A caller that finds
//! the bucket empty sleeps until the next token is due. While any user call
//! waits, background calls (probes, sweeps, status polls) do not take
//! tokens at all, so a busy sweep can never delay a department's request by
//! more than the token it is already holding.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use yunshu_core::model::Budget;

/// Who a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A department or an admin is waiting for it.
    User,
    /// Probes, polls and sweeps.
    Background,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
    users_waiting: usize,
}

/// One foundation's call budget.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

impl TokenBucket {
    /// A full bucket for `budget`; a field left 0 (unset, in a CRD or the
    /// config file) takes its default, as through the admin API.
    pub fn new(budget: Budget) -> Self {
        let budget = budget.or_defaults();
        let rate = f64::from(budget.requests_per_second);
        let burst = f64::from(budget.burst);
        Self {
            rate,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                refilled: Instant::now(),
                users_waiting: 0,
            }),
        }
    }

    /// Takes one token, waiting for it if needed. Returns how long it waited.
    pub async fn acquire(&self, priority: Priority) -> Duration {
        let started = Instant::now();
        let mut registered = false;
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let elapsed = now.duration_since(s.refilled).as_secs_f64();
                s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
                s.refilled = now;
                let yield_to_users = priority == Priority::Background && s.users_waiting > 0;
                if !yield_to_users && s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    if registered {
                        s.users_waiting -= 1;
                    }
                    return started.elapsed();
                }
                if priority == Priority::User && !registered {
                    s.users_waiting += 1;
                    registered = true;
                }
                let deficit = (1.0 - s.tokens).max(0.0);
                // A background caller yielding to users re-checks after one
                // token's time even if a token is there now.
                Duration::from_secs_f64((deficit / self.rate).max(1.0 / self.rate / 4.0))
            };
            let guard = WaitGuard {
                bucket: self,
                registered,
            };
            tokio::time::sleep(wait).await;
            std::mem::forget(guard);
        }
    }
}

/// Unregisters a waiting user call if its future is dropped mid-wait, so an
/// abandoned request does not hold background calls back forever.
struct WaitGuard<'a> {
    bucket: &'a TokenBucket,
    registered: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.registered {
            let mut s = self
                .bucket
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            s.users_waiting = s.users_waiting.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let b = TokenBucket::new(Budget {
            requests_per_second: 10,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(b.acquire(Priority::User).await, Duration::ZERO);
        }
        let waited = b.acquire(Priority::User).await;
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(waited <= Duration::from_millis(150), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn user_calls_go_before_background_ones() {
        let b = Arc::new(TokenBucket::new(Budget {
            requests_per_second: 5,
            burst: 1,
        }));
        b.acquire(Priority::User).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Background calls queue first; then users arrive.
        for i in 0..3 {
            let (b, order) = (b.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                b.acquire(Priority::Background).await;
                order.lock().expect("lock").push(format!("bg{i}"));
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        for i in 0..3 {
            let (b, order) = (b.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                b.acquire(Priority::User).await;
                order.lock().expect("lock").push(format!("user{i}"));
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let order = order.lock().expect("lock").clone();
        let first_bg = order.iter().position(|s| s.starts_with("bg"));
        let last_user = order.iter().rposition(|s| s.starts_with("user"));
        assert!(first_bg > last_user, "{order:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_user_wait_releases_background_calls() {
        let b = Arc::new(TokenBucket::new(Budget {
            requests_per_second: 10,
            burst: 1,
        }));
        b.acquire(Priority::User).await;
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { b.acquire(Priority::User).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        waiting.abort();
        let _ = waiting.await;
        let waited = tokio::time::timeout(Duration::from_secs(1), b.acquire(Priority::Background))
            .await
            .expect("background call must not starve");
        assert!(waited <= Duration::from_millis(200), "{waited:?}");
    }
}
