//! Task counts by type and status, kept in memory so summaries never scan.

use mimir_core::{PerType, WorkTaskStatus, WorkTaskType};
use std::collections::BTreeMap;

/// How many tasks there are of each (type, status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskCounts {
    cells: PerType<[u64; WorkTaskStatus::COUNT]>,
}

impl TaskCounts {
    /// Adds `n` tasks of `t` in status `s`.
    pub fn add(&mut self, t: WorkTaskType, s: WorkTaskStatus, n: u64) {
        self.cells[t][s.index()] += n;
    }

    /// Records that one task of `t` moved from `from` to `to`.
    pub fn moved(&mut self, t: WorkTaskType, from: WorkTaskStatus, to: WorkTaskStatus) {
        let row = &mut self.cells[t];
        debug_assert!(
            row[from.index()] > 0,
            "count of {t} {from} would go negative"
        );
        row[from.index()] = row[from.index()].saturating_sub(1);
        row[to.index()] += 1;
    }

    /// Tasks of one type in one status.
    pub fn get(&self, t: WorkTaskType, s: WorkTaskStatus) -> u64 {
        self.cells[t][s.index()]
    }

    /// Tasks per status, every status present.
    pub fn by_status(&self) -> BTreeMap<WorkTaskStatus, u64> {
        WorkTaskStatus::ALL
            .into_iter()
            .map(|s| {
                (
                    s,
                    WorkTaskType::ALL.into_iter().map(|t| self.get(t, s)).sum(),
                )
            })
            .collect()
    }

    /// Tasks per type, every type present.
    pub fn by_type(&self) -> BTreeMap<WorkTaskType, u64> {
        WorkTaskType::ALL
            .into_iter()
            .map(|t| {
                (
                    t,
                    WorkTaskStatus::ALL
                        .into_iter()
                        .map(|s| self.get(t, s))
                        .sum(),
                )
            })
            .collect()
    }

    /// All tasks.
    pub fn total(&self) -> u64 {
        self.cells.iter().flat_map(|(_, row)| row).sum::<u64>()
    }
}
