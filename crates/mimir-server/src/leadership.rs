//! Which orchestrator process does the duties that must run once: the lease
//! reaper, the autoscaler, Kubernetes dispatch (and later schedules).
//!
//! Every process that shares a store campaigns through [`Store::lead`]
//! every [`Leadership::renew_every`]; the store keeps a lease row with a term
//! (one process owns a SQLite store, so it always leads). A leader that
//! cannot renew before its lease runs out steps down on its own, before
//! another process may take over, and leader-only writes carry the term so
//! a store refuses them from a process that was deposed without noticing.

use mimir_store::{Store, Term};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Defaults to 3 s: a leader killed without resigning is replaced within
/// this plus one renewal period.
pub const DEFAULT_LEADER_TTL: Duration = Duration::from_secs(3);

/// This process's standing in the election.
pub struct Leadership {
    candidate: String,
    ttl: Duration,
    /// The term held and until when it surely holds (taken before the
    /// store was asked, so never later than the store's own expiry).
    held: Mutex<Option<(Term, Instant)>>,
    changes: watch::Sender<Option<Term>>,
    /// When the store last could not be reached.
    unreachable_at: Mutex<Option<Instant>>,
}

impl Leadership {
    /// A candidate named `candidate` (unique per process) holding leases of `ttl`.
    pub fn new(candidate: String, ttl: Duration) -> Arc<Leadership> {
        Arc::new(Leadership {
            candidate,
            ttl,
            held: Mutex::new(None),
            changes: watch::channel(None).0,
            unreachable_at: Mutex::new(None),
        })
    }

    /// This process's name in the election.
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// How often the leader renews: a third of its lease, so two renewals
    /// may fail before it must step down.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// The term while this process surely leads, else `None`.
    pub fn term(&self) -> Option<Term> {
        let held = self.held.lock();
        held.and_then(|(term, until)| (Instant::now() < until).then_some(term))
    }

    /// Whether this process leads now.
    pub fn leads(&self) -> bool {
        self.term().is_some()
    }

    /// Follows changes of the term held (`None` while not leading).
    pub fn watch(&self) -> watch::Receiver<Option<Term>> {
        self.changes.subscribe()
    }

    /// One round of the campaign: takes or renews the leadership if it can.
    pub async fn campaign_once(&self, store: &dyn Store) {
        let asked = Instant::now();
        let answer = store.lead(&self.candidate, self.ttl).await;
        let now_held = match answer {
            Ok(Some(term)) => Some((term, asked + self.ttl)),
            Ok(None) => None,
            Err(error) => {
                self.note_unreachable();
                // Still the leader until the lease taken earlier runs out.
                tracing::warn!(%error, "cannot reach the store to renew the leadership");
                self.held
                    .lock()
                    .filter(|(_, until)| Instant::now() < *until)
            }
        };
        let before = {
            let mut held = self.held.lock();
            std::mem::replace(&mut *held, now_held).map(|(term, _)| term)
        };
        let after = now_held.map(|(term, _)| term);
        if before != after {
            match after {
                Some(Term(term)) => {
                    tracing::info!(candidate = %self.candidate, term, "this orchestrator leads")
                }
                None => {
                    tracing::warn!(candidate = %self.candidate, "this orchestrator no longer leads")
                }
            }
            self.changes.send_replace(after);
        }
    }

    /// Records that the store could not be reached just now.
    pub fn note_unreachable(&self) {
        *self.unreachable_at.lock() = Some(Instant::now());
    }

    /// Whether the store was out of reach within the last `window`. While
    /// it was, no worker could renew its lease either: the lease reaper
    /// waits one lease lifetime after an outage, so live workers renew
    /// before anything of theirs is taken for lost.
    pub fn unreachable_within(&self, window: Duration) -> bool {
        self.unreachable_at
            .lock()
            .is_some_and(|at| at.elapsed() < window)
    }

    /// Campaigns until the process stops; also notices a lease that ran
    /// out between rounds.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        let mut tick = tokio::time::interval(self.renew_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.campaign_once(store.as_ref()).await;
        }
    }

    /// Gives up the leadership at a clean shutdown, so another process
    /// takes over at once instead of after the lease.
    pub async fn resign(&self, store: &dyn Store) {
        let Some(term) = self.term() else {
            return;
        };
        *self.held.lock() = None;
        self.changes.send_replace(None);
        if let Err(error) = store.resign(&self.candidate, term).await {
            tracing::warn!(%error, "cannot resign the leadership: it passes on when its lease ends");
        }
    }
}
