//! Listing tasks: filters and cursor pagination.

use chrono::{DateTime, Utc};
use mimir_core::{Priority, StatusFilter, WorkTask, WorkTaskType};

/// The most tasks one page may hold.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Which tasks to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only these statuses.
    pub status: Option<StatusFilter>,
    /// Only this type.
    pub task_type: Option<WorkTaskType>,
    /// Only this project.
    pub project_id: Option<String>,
    /// Only priorities at or above this.
    pub min_priority: Option<Priority>,
    /// Only priorities at or below this.
    pub max_priority: Option<Priority>,
    /// Only tasks submitted at or after this.
    pub submitted_from: Option<DateTime<Utc>>,
    /// Only tasks submitted before this.
    pub submitted_until: Option<DateTime<Utc>>,
    /// Page size, `1..=MAX_LIST_LIMIT`.
    pub limit: usize,
    /// Continue after this position (from a previous page's `next_cursor`).
    pub after: Option<u64>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The tasks, newest first.
    pub tasks: Vec<WorkTask>,
    /// Where the next page starts, when there may be one.
    pub next: Option<u64>,
}
