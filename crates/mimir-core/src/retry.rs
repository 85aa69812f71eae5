//! Retry decisions and exponential backoff with jitter.

use serde::Deserialize;
use std::time::Duration;

/// Defaults to 1 s: the wait before the first retry.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Defaults to 5 min: no retry waits longer.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Defaults to 0.2: each wait is spread ±20% so retries of many tasks that failed
/// together do not come back together.
pub const DEFAULT_BACKOFF_JITTER: f64 = 0.2;

/// How long a failed attempt waits before it may run again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry; doubles with each retry.
    pub base: Duration,
    /// Longest wait.
    pub cap: Duration,
    /// Fraction (0..=1) by which a wait is spread at random.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: DEFAULT_BACKOFF_BASE,
            cap: DEFAULT_BACKOFF_CAP,
            jitter: DEFAULT_BACKOFF_JITTER,
        }
    }
}

/// What happens to a task whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryDecision {
    /// Back to the queue as retry number `retry_count`, not before `delay` from now.
    Retry {
        /// The task's new `retry_count`.
        retry_count: u32,
        /// The backoff before it may run again.
        delay: Duration,
    },
    /// No retries left: the task fails.
    Fail,
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1 for the first retry).
    /// `random` is a uniform sample in `[0, 1)`, passed in to keep this pure.
    pub fn backoff(&self, retry: u32, random: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(63);
        let factor = 2f64.powi(exponent as i32);
        let nominal = (self.base.as_secs_f64() * factor).min(self.cap.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = 1.0 - jitter + 2.0 * jitter * random.clamp(0.0, 1.0);
        Duration::from_secs_f64((nominal * spread).min(self.cap.as_secs_f64()))
    }

    /// Decides the fate of a task that has been retried `retry_count` times out
    /// of `max_retries` and whose attempt just failed.
    pub fn decide(&self, retry_count: u32, max_retries: u32, random: f64) -> RetryDecision {
        if retry_count >= max_retries {
            return RetryDecision::Fail;
        }
        let next = retry_count + 1;
        RetryDecision::Retry {
            retry_count: next,
            delay: self.backoff(next, random),
        }
    }
}

/// The retry settings as written in a config file (`retry.backoffBase` ...).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryConfig {
    /// Wait before the first retry, in milliseconds. Defaults to 1000.
    pub backoff_base_ms: u64,
    /// Longest wait, in milliseconds. Defaults to 300000.
    pub backoff_cap_ms: u64,
    /// Spread of each wait, 0..=1. Defaults to 0.2.
    pub backoff_jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        RetryConfig {
            backoff_base_ms: policy.base.as_millis() as u64,
            backoff_cap_ms: policy.cap.as_millis() as u64,
            backoff_jitter: policy.jitter,
        }
    }
}

impl RetryConfig {
    /// The policy, or a sentence naming the bad key.
    pub fn policy(&self) -> Result<RetryPolicy, String> {
        if !(0.0..=1.0).contains(&self.backoff_jitter) {
            return Err(format!(
                "retry.backoffJitter must be between 0 and 1, got {}",
                self.backoff_jitter
            ));
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            return Err("retry.backoffCapMs must not be below retry.backoffBaseMs".into());
        }
        Ok(RetryPolicy {
            base: Duration::from_millis(self.backoff_base_ms),
            cap: Duration::from_millis(self.backoff_cap_ms),
            jitter: self.backoff_jitter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_until_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            jitter: 0.0,
        };
        let waits: Vec<u64> = (1..=6).map(|n| policy.backoff(n, 0.5).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn fails_when_retries_are_used_up() {
        let policy = RetryPolicy::default();
        assert!(matches!(
            policy.decide(0, 2, 0.0),
            RetryDecision::Retry { retry_count: 1, .. }
        ));
        assert!(matches!(
            policy.decide(1, 2, 0.0),
            RetryDecision::Retry { retry_count: 2, .. }
        ));
        assert_eq!(policy.decide(2, 2, 0.0), RetryDecision::Fail);
        assert_eq!(policy.decide(0, 0, 0.0), RetryDecision::Fail);
    }

    #[test]
    fn config_names_the_bad_key() {
        let config = RetryConfig {
            backoff_jitter: 2.0,
            ..RetryConfig::default()
        };
        assert!(config.policy().unwrap_err().contains("retry.backoffJitter"));
    }

    proptest! {
        #[test]
        fn jitter_stays_within_its_band(retry in 1u32..80, random in 0.0f64..1.0, jitter in 0.0f64..=1.0) {
            let policy = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(60), jitter };
            let nominal = (0.1 * 2f64.powi((retry - 1).min(63) as i32)).min(60.0);
            let wait = policy.backoff(retry, random).as_secs_f64();
            prop_assert!(wait <= 60.0 + 1e-9);
            prop_assert!(wait >= nominal * (1.0 - jitter) - 1e-9);
            prop_assert!(wait <= nominal * (1.0 + jitter) + 1e-9);
        }
    }
}
