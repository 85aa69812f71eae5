//! The queue order, kept in memory over the durable store.
//!
//! Rules:
//! - higher priority first (10 is most urgent);
//! - first come, first served within a priority (`seq` is the order in which
//!   tasks entered the queue; a retried task gets a new `seq` when it re-enters,
//!   so it stands behind the tasks of its priority already waiting);
//! - a task in retry backoff (`not_before` in the future) is not eligible yet;
//! - with [`Aging`], a waiting task's effective priority rises by one level per
//!   `interval` waited (up to 10), so low priorities never starve; ties go to the
//!   task that entered first.
//!
//! Layout: one FIFO (a `BTreeMap` keyed by `seq`) per (type, priority) level, plus
//! a delay set ordered by `not_before`. Within a level the head is the oldest
//! entry and so has the highest effective priority of its level: a dequeue looks
//! at 30 heads at most, whatever the queue length. An entry costs about 40 bytes.

use crate::{Priority, WorkTaskType};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// One queued task, as the queue needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry {
    /// The task.
    pub id: Uuid,
    /// Its type (workers may lease only some types).
    pub task_type: WorkTaskType,
    /// Its base priority.
    pub priority: Priority,
    /// Position in arrival order; unique and increasing.
    pub seq: u64,
    /// When it entered the queue, in microseconds since the epoch.
    pub enqueued_at_us: i64,
    /// While in retry backoff: not eligible before this time (µs since the epoch).
    pub not_before_us: Option<i64>,
}

/// Optional aging: one priority level gained per `interval` spent waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aging {
    /// Waiting time worth one priority level.
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: Uuid,
    enqueued_at_us: i64,
}

/// The queued tasks in dequeue order. Not thread-safe by itself: the store
/// guards it and changes it only after the matching change is committed.
#[derive(Debug)]
pub struct QueueIndex {
    ready: Vec<BTreeMap<u64, Slot>>,
    delayed: BTreeMap<(i64, u64), QueueEntry>,
    aging: Option<Aging>,
    len: usize,
}

fn level(t: WorkTaskType, p: Priority) -> usize {
    t.index() * Priority::LEVELS + p.index()
}

impl QueueIndex {
    /// An empty queue, with aging when `aging` is set.
    pub fn new(aging: Option<Aging>) -> QueueIndex {
        QueueIndex {
            ready: (0..WorkTaskType::COUNT * Priority::LEVELS)
                .map(|_| BTreeMap::new())
                .collect(),
            delayed: BTreeMap::new(),
            aging,
            len: 0,
        }
    }

    /// Tasks waiting, eligible or in backoff.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tasks waiting whose base priority is at least `min`.
    pub fn count_at_least(&self, min: Priority) -> usize {
        let ready: usize = WorkTaskType::ALL
            .into_iter()
            .flat_map(|t| {
                (min.index()..Priority::LEVELS).map(move |p| level(t, Priority::from_index(p)))
            })
            .map(|l| self.ready[l].len())
            .sum();
        ready + self.delayed.values().filter(|e| e.priority >= min).count()
    }

    /// Tasks waiting per type, eligible or not.
    pub fn len_by_type(&self, task_type: WorkTaskType) -> usize {
        let base = task_type.index() * Priority::LEVELS;
        let ready: usize = self.ready[base..base + Priority::LEVELS]
            .iter()
            .map(BTreeMap::len)
            .sum();
        ready
            + self
                .delayed
                .values()
                .filter(|e| e.task_type == task_type)
                .count()
    }

    /// Adds a task. `seq` must be unique.
    pub fn insert(&mut self, entry: QueueEntry) {
        let fresh = match entry.not_before_us {
            Some(not_before) => self
                .delayed
                .insert((not_before, entry.seq), entry)
                .is_none(),
            None => self.ready[level(entry.task_type, entry.priority)]
                .insert(
                    entry.seq,
                    Slot {
                        id: entry.id,
                        enqueued_at_us: entry.enqueued_at_us,
                    },
                )
                .is_none(),
        };
        debug_assert!(fresh, "queue seq {} inserted twice", entry.seq);
        if fresh {
            self.len += 1;
        }
    }

    /// Removes a task (cancelled, or taken by other means); false when absent.
    pub fn remove(&mut self, entry: &QueueEntry) -> bool {
        let removed = match entry.not_before_us {
            Some(not_before) => self.delayed.remove(&(not_before, entry.seq)).is_some(),
            None => false,
        } || self.ready[level(entry.task_type, entry.priority)]
            .remove(&entry.seq)
            .is_some();
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Moves tasks whose backoff has ended to their ready level.
    fn promote(&mut self, now_us: i64) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now_us {
                break;
            }
            let entry = entry.remove();
            self.ready[level(entry.task_type, entry.priority)].insert(
                entry.seq,
                Slot {
                    id: entry.id,
                    enqueued_at_us: entry.enqueued_at_us,
                },
            );
        }
    }

    fn effective(&self, base: Priority, enqueued_at_us: i64, now_us: i64) -> u8 {
        let Some(aging) = self.aging else {
            return base.get();
        };
        let interval = aging.interval.as_micros().max(1) as i64;
        let waited = (now_us - enqueued_at_us).max(0);
        let gained = (waited / interval).min(i64::from(Priority::MAX.get()));
        (i64::from(base.get()) + gained).min(i64::from(Priority::MAX.get())) as u8
    }

    /// Takes the next eligible task at `now_us` among the types `accept` allows.
    pub fn pop(
        &mut self,
        now_us: i64,
        accept: impl Fn(WorkTaskType) -> bool,
    ) -> Option<QueueEntry> {
        self.promote(now_us);
        // (effective priority, -seq) is the order; the best head wins.
        let mut best: Option<(u8, u64, usize)> = None;
        for task_type in WorkTaskType::ALL {
            if !accept(task_type) {
                continue;
            }
            for p in (0..Priority::LEVELS).rev() {
                let l = level(task_type, Priority::from_index(p));
                let Some((&seq, slot)) = self.ready[l].first_key_value() else {
                    continue;
                };
                let eff = self.effective(Priority::from_index(p), slot.enqueued_at_us, now_us);
                let better = match best {
                    None => true,
                    Some((best_eff, best_seq, _)) => {
                        eff > best_eff || (eff == best_eff && seq < best_seq)
                    }
                };
                if better {
                    best = Some((eff, seq, l));
                }
                if self.aging.is_none() {
                    // Without aging the highest non-empty level of a type is its best.
                    break;
                }
            }
        }
        let (_, _, l) = best?;
        let (seq, slot) = self.ready[l].pop_first()?;
        self.len -= 1;
        Some(QueueEntry {
            id: slot.id,
            task_type: WorkTaskType::ALL[l / Priority::LEVELS],
            priority: Priority::from_index(l % Priority::LEVELS),
            seq,
            enqueued_at_us: slot.enqueued_at_us,
            not_before_us: None,
        })
    }

    /// Where an eligible queued task stands: eligible tasks of a higher
    /// priority, and of its own priority that arrived before it, any type.
    /// `None` when it is not in the queue or waits out a backoff. With aging
    /// on, base priorities are compared: a figure, not a promise.
    pub fn position(&self, entry: &QueueEntry) -> Option<crate::explain::QueuePosition> {
        let own = level(entry.task_type, entry.priority);
        if entry.not_before_us.is_some() || !self.ready[own].contains_key(&entry.seq) {
            return None;
        }
        let mut position = crate::explain::QueuePosition::default();
        for task_type in WorkTaskType::ALL {
            for p in entry.priority.index()..Priority::LEVELS {
                let at = &self.ready[level(task_type, Priority::from_index(p))];
                if p == entry.priority.index() {
                    position.ahead_same += at.range(..entry.seq).count();
                } else {
                    position.ahead_higher += at.len();
                }
            }
        }
        Some(position)
    }

    /// When the earliest task in backoff becomes eligible, if any waits.
    pub fn next_eligible_at(&self) -> Option<i64> {
        self.delayed
            .first_key_value()
            .map(|((not_before, _), _)| *not_before)
    }

    /// Up to `limit` waiting tasks with base priority at least `min`, most urgent
    /// first (priority, then arrival), including those in backoff.
    pub fn most_urgent(&self, min: Priority, limit: usize) -> Vec<QueueEntry> {
        let mut out = Vec::new();
        for p in (min.index()..Priority::LEVELS).rev() {
            if out.len() >= limit {
                break;
            }
            let priority = Priority::from_index(p);
            let mut at_level: Vec<QueueEntry> = Vec::new();
            for task_type in WorkTaskType::ALL {
                let entries = self.ready[level(task_type, priority)]
                    .iter()
                    .take(limit - out.len());
                at_level.extend(entries.map(|(&seq, slot)| QueueEntry {
                    id: slot.id,
                    task_type,
                    priority,
                    seq,
                    enqueued_at_us: slot.enqueued_at_us,
                    not_before_us: None,
                }));
            }
            at_level.extend(
                self.delayed
                    .values()
                    .filter(|e| e.priority == priority)
                    .copied(),
            );
            at_level.sort_unstable_by_key(|e| e.seq);
            at_level.truncate(limit - out.len());
            out.extend(at_level);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(seq: u64, t: WorkTaskType, p: i64, at: i64, not_before: Option<i64>) -> QueueEntry {
        QueueEntry {
            id: Uuid::from_u128(u128::from(seq)),
            task_type: t,
            priority: Priority::new(p).expect("valid priority"),
            seq,
            enqueued_at_us: at,
            not_before_us: not_before,
        }
    }

    const ANY: fn(WorkTaskType) -> bool = |_| true;

    #[test]
    fn priority_then_fifo() {
        let mut q = QueueIndex::new(None);
        q.insert(entry(1, WorkTaskType::MlTraining, 1, 0, None));
        q.insert(entry(2, WorkTaskType::PipelineExecution, 5, 0, None));
        q.insert(entry(3, WorkTaskType::MlInference, 5, 0, None));
        q.insert(entry(4, WorkTaskType::PipelineExecution, 10, 0, None));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop(0, ANY))
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [4, 2, 3, 1]);
        assert!(q.is_empty());
    }

    #[test]
    fn backoff_holds_a_task_until_its_time() {
        let mut q = QueueIndex::new(None);
        q.insert(entry(1, WorkTaskType::MlTraining, 10, 0, Some(1_000)));
        q.insert(entry(2, WorkTaskType::MlTraining, 1, 0, None));
        assert_eq!(q.next_eligible_at(), Some(1_000));
        assert_eq!(q.pop(500, ANY).map(|e| e.seq), Some(2));
        assert_eq!(q.pop(500, ANY), None);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(1_000, ANY).map(|e| e.seq), Some(1));
    }

    #[test]
    fn aging_lifts_a_starving_task() {
        let mut q = QueueIndex::new(Some(Aging {
            interval: Duration::from_micros(10),
        }));
        q.insert(entry(1, WorkTaskType::MlTraining, 1, 0, None));
        q.insert(entry(2, WorkTaskType::MlTraining, 5, 35, None));
        // At t=40 the first has waited 4 intervals (1+4 = 5), the second none (5):
        // a tie, and the earlier arrival wins.
        assert_eq!(q.pop(40, ANY).map(|e| e.seq), Some(1));
    }

    #[test]
    fn type_filter_skips_other_types() {
        let mut q = QueueIndex::new(None);
        q.insert(entry(1, WorkTaskType::MlTraining, 10, 0, None));
        q.insert(entry(2, WorkTaskType::MlInference, 1, 0, None));
        assert_eq!(
            q.pop(0, |t| t == WorkTaskType::MlInference).map(|e| e.seq),
            Some(2)
        );
        assert_eq!(q.len_by_type(WorkTaskType::MlTraining), 1);
    }

    #[test]
    fn most_urgent_lists_in_dequeue_order_with_a_limit() {
        let mut q = QueueIndex::new(None);
        for seq in 1..=20 {
            q.insert(entry(
                seq,
                WorkTaskType::ALL[seq as usize % WorkTaskType::COUNT],
                (seq % 10 + 1) as i64,
                0,
                None,
            ));
        }
        q.insert(entry(21, WorkTaskType::MlTraining, 10, 0, Some(99)));
        let urgent = q.most_urgent(Priority::new(9).expect("valid"), 100);
        let seqs: Vec<u64> = urgent.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [9, 19, 21, 8, 18]);
        assert_eq!(q.count_at_least(Priority::new(9).expect("valid")), 5);
        assert_eq!(q.most_urgent(Priority::MIN, 3).len(), 3);
    }

    /// What a test does to the queue.
    #[derive(Debug, Clone)]
    enum Op {
        Submit {
            type_index: usize,
            priority: i64,
        },
        /// Pop the next task and put it back as a retry with this backoff.
        Retry {
            backoff: i64,
        },
        /// Cancel the n-th waiting task (modulo the number waiting).
        Cancel {
            nth: usize,
        },
        Pop,
        Tick {
            by: i64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..WorkTaskType::COUNT, 1i64..=10).prop_map(|(type_index, priority)| Op::Submit { type_index, priority }),
            1 => (0i64..50).prop_map(|backoff| Op::Retry { backoff }),
            1 => (0usize..1000).prop_map(|nth| Op::Cancel { nth }),
            3 => Just(Op::Pop),
            1 => (0i64..30).prop_map(|by| Op::Tick { by }),
        ]
    }

    /// The rules written the slow, obvious way.
    fn model_pick(waiting: &[QueueEntry], now: i64, aging: Option<i64>) -> Option<usize> {
        waiting
            .iter()
            .enumerate()
            .filter(|(_, e)| e.not_before_us.is_none_or(|t| t <= now))
            .max_by_key(|(_, e)| {
                let gained = aging.map_or(0, |i| ((now - e.enqueued_at_us).max(0) / i).min(10));
                let eff = (i64::from(e.priority.get()) + gained).min(10);
                (eff, std::cmp::Reverse(e.seq))
            })
            .map(|(i, _)| i)
    }

    fn run(ops: Vec<Op>, aging: Option<i64>) -> Result<(), TestCaseError> {
        let mut q = QueueIndex::new(aging.map(|i| Aging {
            interval: Duration::from_micros(i as u64),
        }));
        let mut model: Vec<QueueEntry> = Vec::new();
        let (mut now, mut seq) = (0i64, 0u64);
        let (mut submitted, mut finished, mut cancelled) = (0usize, 0usize, 0usize);
        for op in ops {
            match op {
                Op::Submit {
                    type_index,
                    priority,
                } => {
                    seq += 1;
                    let e = entry(seq, WorkTaskType::ALL[type_index], priority, now, None);
                    q.insert(e);
                    model.push(e);
                    submitted += 1;
                }
                Op::Pop | Op::Retry { .. } => {
                    let expected = model_pick(&model, now, aging).map(|i| model.remove(i));
                    let got = q.pop(now, ANY);
                    prop_assert_eq!(got.map(|e| e.seq), expected.map(|e| e.seq));
                    if let (Some(e), Op::Retry { backoff }) = (got, &op) {
                        seq += 1;
                        let retry = QueueEntry {
                            seq,
                            enqueued_at_us: now,
                            not_before_us: Some(now + backoff),
                            ..e
                        };
                        q.insert(retry);
                        model.push(retry);
                    } else if got.is_some() {
                        finished += 1;
                    }
                }
                Op::Cancel { nth } => {
                    if !model.is_empty() {
                        let e = model.remove(nth % model.len());
                        prop_assert!(q.remove(&e));
                        prop_assert!(!q.remove(&e), "removed twice");
                        cancelled += 1;
                    }
                }
                Op::Tick { by } => now += by,
            }
            prop_assert_eq!(q.len(), model.len());
        }
        // Nothing lost, nothing duplicated: drain everything far in the future.
        let mut drained = std::collections::HashSet::new();
        while let Some(e) = q.pop(i64::MAX / 2, ANY) {
            prop_assert!(drained.insert(e.id), "task {} came out twice", e.id);
        }
        prop_assert_eq!(drained.len(), model.len());
        prop_assert_eq!(submitted, finished + cancelled + drained.len());
        Ok(())
    }

    proptest! {
        #[test]
        fn dequeue_order_matches_the_rules(ops in proptest::collection::vec(op(), 0..300)) {
            run(ops, None)?;
        }

        #[test]
        fn dequeue_order_matches_the_rules_with_aging(
            ops in proptest::collection::vec(op(), 0..300),
            interval in 1i64..40,
        ) {
            run(ops, Some(interval))?;
        }
    }
}
