//! Retry timing: exponential backoff with jitter, honouring `Retry-After`, and an injectable
//! sleeper so tests never sleep.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// How hard one sync call tries before giving up (the queue stays; the next sync tries again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt (doubled each time).
    pub base: Duration,
    /// Upper bound of the exponential part.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (0-based), with `jitter` in `[0, 1)`:
    /// `exp = min(cap, base · 2^attempt)`; wait `max(retry_after, exp / 2) + jitter · exp / 2`.
    ///
    /// Half of the exponential step is random so that phones that lost coverage together do not
    /// come back together; a `Retry-After` is a floor, never shortened.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.cap);
        let half = exp / 2;
        let floor = retry_after.unwrap_or_default().max(half);
        floor + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Something that waits.
pub trait Sleeper: Send + Sync {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Waits for real, with tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Records the waits instead of waiting (for tests and dry runs).
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    waits: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        if let Ok(mut w) = self.waits.lock() {
            w.push(duration);
        }
    }
}

impl<S: Sleeper> Sleeper for std::sync::Arc<S> {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        (**self).sleep(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_exponentially_with_bounded_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, None, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay(0, None, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(3, None, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, None, 0.5), Duration::from_secs(6));
        // Capped.
        assert_eq!(p.delay(40, None, 1.0), Duration::from_secs(300));
        // Retry-After is a floor.
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(30)), 1.0),
            Duration::from_millis(30_500)
        );
    }
}
