//! `RetryPolicy`: how often and how far apart idempotent requests are retried.

use super::*;

/// Retries of idempotent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retries).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX));
        let base = base.min(self.max_backoff);
        // up to +25 % jitter so that many clients do not retry in lockstep
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        (base + jitter).min(self.max_backoff.max(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_bounded() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert!(
            p.backoff(0) >= Duration::from_millis(100)
                && p.backoff(0) <= Duration::from_millis(125)
        );
        assert!(p.backoff(40) <= Duration::from_secs(1));
    }
}
