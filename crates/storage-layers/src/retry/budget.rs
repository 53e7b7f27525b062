//! The retry budget: a token bucket shared by the stores of a layer (or several layers).

use std::sync::Mutex;

/// A token bucket limiting retries to a share of successful traffic (like tower's budget).
///
/// Each retry takes one token; each first-try success puts back `deposit_per_success`
/// (at most `max_tokens` are kept). With the defaults (10 tokens, 0.2 per success) a busy
/// store retries at most about one call in five once the initial reserve is spent, so an
/// outage does not multiply load on the backend. Share one budget across stores with
/// [`RetryLayer::with_budget`](super::RetryLayer::with_budget).
#[derive(Debug)]
pub struct RetryBudget {
    tokens: Mutex<f64>,
    max_tokens: f64,
    deposit_per_success: f64,
}

impl RetryBudget {
    /// A budget holding at most `max_tokens` retries, refilled by `deposit_per_success` per
    /// successful call. Starts full.
    pub fn new(max_tokens: u32, deposit_per_success: f64) -> Self {
        RetryBudget {
            tokens: Mutex::new(f64::from(max_tokens)),
            max_tokens: f64::from(max_tokens),
            deposit_per_success: deposit_per_success.max(0.0),
        }
    }

    /// A budget that never runs out.
    pub fn unlimited() -> Self {
        RetryBudget::new(u32::MAX, 0.0)
    }

    /// Take one retry token; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        let mut t = self.tokens.lock().expect("retry budget");
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }

    /// Credit a success.
    pub fn deposit(&self) {
        let mut t = self.tokens.lock().expect("retry budget");
        *t = (*t + self.deposit_per_success).min(self.max_tokens);
    }

    /// Tokens left.
    pub fn remaining(&self) -> f64 {
        *self.tokens.lock().expect("retry budget")
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(10, 0.2)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::ObjectStoreExt;
    use object_store::path::Path;
    use storage_core::MemoryStore;

    use super::*;
    use crate::chaos::ChaosLayer;
    use crate::retry::RetryLayer;

    #[tokio::test]
    async fn budget_stops_retry_storms() {
        let chaos = ChaosLayer::default().with_error_rate(1.0);
        let retry = RetryLayer::default()
            .with_base_delay(Duration::ZERO)
            .with_max_attempts(10)
            .with_budget(Arc::new(RetryBudget::new(5, 0.1)));
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        for _ in 0..4 {
            assert!(store.get(&Path::from("a")).await.is_err());
        }
        assert_eq!(retry.stats().retries, 5);
        assert_eq!(chaos.stats().injected_errors, 4 + 5);
        assert!(retry.stats().budget_exhausted >= 1);
    }
}
