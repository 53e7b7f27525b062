//! The compare-and-swap retry loop shared by [`Collection::update_with`] and
//! [`VersionedRecords::commit`]: take this process's turn on the key, then run rounds
//! (read, decide, conditional write) until one succeeds, one fails for good, or the backoff
//! strategy runs out. A round that lost a race (a conflict) or hit a transient error is
//! retried after the strategy's delay; the strategy's clock starts with the first round.
//!
//! [`Collection::update_with`]: crate::Collection::update_with
//! [`VersionedRecords::commit`]: crate::VersionedRecords::commit

use storage_core::backoff::BackoffStrategy;
use storage_core::{Bucket, Key, StorageError};
use tokio::sync::OwnedMutexGuard;

use crate::queue::{process_queue, queue_key};

/// Why one round failed.
pub(crate) enum RoundError {
    /// Ends the loop as it is: the caller's closure failed, or a write landed and repeating
    /// the round would apply it twice.
    Final(StorageError),
    /// The store's answer: retried when it is a conflict or retryable.
    Store(StorageError),
}

impl From<StorageError> for RoundError {
    fn from(e: StorageError) -> Self {
        RoundError::Store(e)
    }
}

/// Why the rounds ended without a result.
pub(crate) enum Unsettled {
    /// The error that ended the loop, as it is.
    Failed(StorageError),
    /// The last round still lost a race when the backoff ran out, after `attempts` rounds:
    /// the caller reports [`StorageError::Conflict`] with what it knows of the winner.
    Contended {
        /// Rounds run, the last included.
        attempts: u32,
    },
}

/// The rounds of one read-modify-write on `key`. The caller runs a round per
/// [`next`](Self::next) and hands each failure to [`after`](Self::after):
///
/// ```text
/// let mut rounds = Rounds::start(bucket, key, queued, backoff).await;
/// let unsettled = loop {
///     match round(rounds.next()).await {
///         Ok(done) => return Ok(done),
///         Err(e) => if let Err(end) = rounds.after(e).await { break end },
///     }
/// };
/// ```
///
/// (A loop over an async closure would be shorter, but its future is not `Send` for every
/// lifetime, and callers spawn these futures.)
pub(crate) struct Rounds<'a> {
    key: &'a Key,
    backoff: &'a BackoffStrategy,
    started: tokio::time::Instant,
    attempts: u32,
    /// This process's turn on the key, when queued; held until the rounds end.
    _turn: Option<OwnedMutexGuard<()>>,
}

impl<'a> Rounds<'a> {
    /// Wait for this process's turn on `key` of `bucket` when `queued` (see
    /// [`crate::queue`]); the backoff's clock starts now.
    pub(crate) async fn start(
        bucket: &Bucket,
        key: &'a Key,
        queued: bool,
        backoff: &'a BackoffStrategy,
    ) -> Rounds<'a> {
        let turn = match queued {
            true => Some(
                process_queue()
                    .turn(&queue_key(bucket.store(), key.as_str()))
                    .await,
            ),
            false => None,
        };
        Rounds {
            key,
            backoff,
            started: tokio::time::Instant::now(),
            attempts: 0,
            _turn: turn,
        }
    }

    /// The number of the round about to run (1 for the first).
    pub(crate) fn next(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// After a failed round: `Ok` once the backoff's delay has passed and another round
    /// should run, else why the rounds end.
    pub(crate) async fn after(&self, failure: RoundError) -> Result<(), Unsettled> {
        let err = match failure {
            RoundError::Final(e) => return Err(Unsettled::Failed(e)),
            RoundError::Store(e) => e,
        };
        let delay = if err.is_conflict() || err.is_retryable() {
            self.backoff
                .next_delay(self.attempts, self.started.elapsed())
        } else {
            None
        };
        match delay {
            Some(d) => {
                tracing::debug!(key = %self.key, attempt = self.attempts, error = %err, "compare-and-swap round failed; retrying");
                tokio::time::sleep(d).await;
                Ok(())
            }
            None if err.is_conflict() => Err(Unsettled::Contended {
                attempts: self.attempts,
            }),
            None => Err(Unsettled::Failed(err)),
        }
    }
}
