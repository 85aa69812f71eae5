//! Schedules: pipelines fired on a clock, and the pure rules of when.
//!
//! A schedule is a cron expression in an IANA time zone. [`Cadence`] parses
//! one and answers the instants it matches; [`plan`] decides, for a schedule
//! that is due, which slots to fire now, which were missed, which were
//! skipped because the previous run is still going, and when it is due next.
//! The orchestrator's scheduler runs these rules; the store records each
//! decision together with the tasks it submits, in one transaction, so a
//! restart neither skips nor repeats a fire.
//!
//! # Cron
//!
//! Five fields (`minute hour day-of-month month day-of-week`), or six with
//! seconds first, and the shortcuts `@yearly` (`@annually`), `@monthly`,
//! `@weekly`, `@daily` (`@midnight`) and `@hourly`.
//!
//! # Daylight saving
//!
//! Slots are wall-clock times in the schedule's zone:
//! - a wall time skipped by a spring-forward jump fires once, at the first
//!   instant after the jump (`30 2 * * *` in Europe/Berlin on the last
//!   Sunday of March fires at 03:00 CEST);
//! - a wall time that happens twice at a fall-back fires once, at its first
//!   occurrence (`30 1 * * *` in America/New_York fires at 01:30 EDT, not
//!   again at 01:30 EST).
//!
//! # Catch-up and overlap
//!
//! When the scheduler looks at a due schedule, the *due slots* are every slot
//! from `next_fire_at` up to now. The latest is on time when it is at most
//! [`ON_TIME_GRACE`] old; the others are late.
//! - `catchup: skip` fires the latest slot if it is on time; every other due
//!   slot is `missed`.
//! - `catchup: once` fires the latest slot whatever its age (`caught_up` when
//!   late); the others are `missed`.
//! - `catchup: all` fires every due slot, oldest first, at most
//!   [`CATCHUP_LIMIT`] of them (the most recent ones; older ones are
//!   `missed`); late ones are `caught_up`.
//!
//! The slots chosen to fire then meet the overlap rule, when a run the
//! schedule fired earlier is still going (queued, scheduled or executing):
//! - `overlap: allow` fires them all;
//! - `overlap: skip` fires none (`skipped_overlap`);
//! - `overlap: queue` keeps the latest as the schedule's one queued fire
//!   (`queued_fire_at`), fired as soon as the previous run ends; the others,
//!   and any slot arriving while one is queued, are `skipped_overlap`.
//!
//! # Jitter
//!
//! A schedule with `jitter_ms` fires each slot up to that long after it, by an
//! amount that depends only on the schedule id and the slot ([`jitter`]), so
//! every replica and every restart agree. The task still carries the slot
//! itself as `scheduled_at`.

use crate::Priority;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// How old the latest due slot may be and still count as on time.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(30);

/// Most slots `catchup: all` fires at once.
pub const CATCHUP_LIMIT: usize = 100;

/// Longest `jitter_ms` a schedule may ask for: one hour.
pub const MAX_JITTER_MS: u64 = 3_600_000;

/// Most pipelines one schedule fires.
pub const MAX_PIPELINES: usize = 20;

/// What to do with slots that passed while nothing fired them (the
/// orchestrator was down, or slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire only the latest slot, and only when it is on time.
    #[default]
    Skip,
    /// Fire the latest slot, however late.
    Once,
    /// Fire every passed slot, up to [`CATCHUP_LIMIT`].
    All,
}

/// What to do with a slot while the schedule's previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Fire anyway.
    #[default]
    Allow,
    /// Do not fire it.
    Skip,
    /// Fire it when the previous run ends (one such fire at most).
    Queue,
}

/// What became of one slot: the values of `mimir_schedule_fires_total`'s
/// `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FireOutcome {
    /// Fired on time.
    Fired,
    /// Not fired: the previous run was still going.
    SkippedOverlap,
    /// Fired late, by the catch-up rule.
    CaughtUp,
    /// Not fired: it passed and the catch-up rule let it go.
    Missed,
}

impl FireOutcome {
    /// Every outcome, in the metric's order.
    pub const ALL: [FireOutcome; 4] = [
        FireOutcome::Fired,
        FireOutcome::SkippedOverlap,
        FireOutcome::CaughtUp,
        FireOutcome::Missed,
    ];

    /// The wire and label name.
    pub fn as_str(self) -> &'static str {
        match self {
            FireOutcome::Fired => "fired",
            FireOutcome::SkippedOverlap => "skipped_overlap",
            FireOutcome::CaughtUp => "caught_up",
            FireOutcome::Missed => "missed",
        }
    }

    /// Whether a task was submitted for the slot.
    pub fn submitted(self) -> bool {
        matches!(self, FireOutcome::Fired | FireOutcome::CaughtUp)
    }
}

impl fmt::Display for FireOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! wire_enum {
    ($ty:ident, $what:literal, $($variant:ident = $name:literal),+) => {
        impl $ty {
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?}; expected {}"),
                        s,
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    };
}

wire_enum!(
    CatchUp,
    "catchup",
    Skip = "skip",
    Once = "once",
    All = "all"
);
wire_enum!(
    Overlap,
    "overlap",
    Allow = "allow",
    Skip = "skip",
    Queue = "queue"
);

/// A schedule as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// Its id (a UUID).
    pub id: String,
    /// The project it belongs to (its pipelines' project).
    pub project_id: String,
    /// Its name, unique within the project; the `schedule` label of its
    /// metrics.
    pub name: String,
    /// The pipeline it fires (the first of `pipeline_ids`).
    pub pipeline_id: String,
    /// Every pipeline it fires, one task each per slot, in this order.
    pub pipeline_ids: Vec<String>,
    /// The cron expression (5 or 6 fields, or an `@` shortcut).
    pub cron: String,
    /// The IANA time zone its cron is read in (`UTC` by default).
    pub timezone: String,
    /// Parameters of every fire (`$.params.*`); `scheduled_at` is added.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    /// Priority of the tasks it submits.
    pub priority: Priority,
    /// False while paused.
    pub enabled: bool,
    /// What to do with slots that passed unfired.
    pub catchup: CatchUp,
    /// What to do while the previous run is still going.
    pub overlap: Overlap,
    /// Each slot fires up to this long after it (spreads load).
    pub jitter_ms: u64,
    /// The next slot to fire; `None` when paused or when the cron never
    /// matches again.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// When `next_fire_at` fires: the slot plus its jitter.
    pub next_due_at: Option<DateTime<Utc>>,
    /// A slot waiting for the previous run to end (`overlap: queue`).
    pub queued_fire_at: Option<DateTime<Utc>>,
    /// The slot of the last fire.
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The task of the last fire (of its first pipeline).
    pub last_task_id: Option<Uuid>,
    /// The tasks of the last fire, one per pipeline.
    pub last_task_ids: Vec<Uuid>,
    /// What became of the last slot decided.
    pub last_outcome: Option<FireOutcome>,
    /// Bumped by every write; a write computed from an older revision is
    /// not applied.
    pub revision: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a user last changed it.
    pub updated_at: DateTime<Utc>,
}

/// A refused schedule field: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    /// The field at fault (`cron`, `timezone`, ...).
    pub field: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Cadence {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
    seconds: bool,
}

impl Cadence {
    /// Parses `cron` (5 or 6 fields, or an `@` shortcut) and `timezone` (an
    /// IANA name such as `Europe/Berlin`, or `UTC`). The error names the
    /// field at fault.
    pub fn parse(cron: &str, timezone: &str) -> Result<Cadence, ScheduleError> {
        let _ = (cron, timezone);
        todo!()
    }

    /// Whether the cron has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.seconds
    }

    /// The first slot strictly after `after`; `None` when the cron never
    /// matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let _ = (after, &self.cron, &self.zone);
        todo!()
    }
}

/// How long after `slot` schedule `schedule_id` fires it, for a
/// `jitter_ms` of `max_ms`: from 0 to `max_ms` inclusive, the same for the
/// same arguments in every process.
pub fn jitter(schedule_id: &str, slot: DateTime<Utc>, max_ms: u64) -> Duration {
    let _ = (schedule_id, slot, max_ms);
    todo!()
}

/// What to do now with a due schedule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Slots to fire now, oldest first, each `fired` or `caught_up`.
    pub fire: Vec<(DateTime<Utc>, FireOutcome)>,
    /// How many slots ended as each outcome that fired nothing
    /// (`skipped_overlap`, `missed`); a slot moved to `queued_fire_at` is in
    /// none of these.
    pub not_fired: Vec<(FireOutcome, u64)>,
    /// The outcome of the latest slot decided (for `last_outcome`); `None`
    /// when nothing was decided.
    pub last_outcome: Option<FireOutcome>,
    /// The schedule's new `next_fire_at`.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The schedule's new `next_due_at`.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The schedule's new `queued_fire_at`.
    pub queued_fire_at: Option<DateTime<Utc>>,
}

/// Decides what `schedule` (enabled, with `cadence` parsed from it) does at
/// `now`, given whether a run it fired earlier is still going. Slots after
/// `now` are left for later; a queued fire goes first once the previous run
/// has ended. The rules are the module's.
pub fn plan(
    schedule: &Schedule,
    cadence: &Cadence,
    now: DateTime<Utc>,
    previous_running: bool,
) -> Plan {
    let _ = (schedule, cadence, now, previous_running);
    todo!()
}

/// The first slot of a schedule created, changed or resumed at `now`, and
/// when it is due: `(next_fire_at, next_due_at)`. Slots before `now` are
/// not caught up.
pub fn first_slot(
    schedule_id: &str,
    cadence: &Cadence,
    jitter_ms: u64,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let _ = (schedule_id, cadence, jitter_ms, now);
    todo!()
}
