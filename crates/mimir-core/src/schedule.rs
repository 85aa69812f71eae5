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
//! This holds for interval crons too: `0 * * * *` in Europe/Berlin fires
//! 02:00 once on the day the clocks go back (at 02:00 CEST), and on the day
//! they go forward the missing 02:00 lands on 03:00 CEST, which fires once.
//!
//! # Catch-up and overlap
//!
//! When the scheduler looks at a due schedule, the *due slots* are every slot
//! from `next_fire_at` up to now. The latest is on time when it is at most
//! [`ON_TIME_GRACE`] old, counted from when it is due (the slot plus its
//! [jitter](#jitter)); the others are late.
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
//! A queued fire goes first once the previous run has ended (`fired`, or
//! `caught_up` when late); the run it starts then counts as running for the
//! due slots of the same decision. Past [`MAX_COUNTED_SLOTS`] due slots the
//! slots between the counted ones and the most recent ones are not counted,
//! so the `missed` count is a lower bound.
//!
//! # Jitter
//!
//! A schedule with `jitter_ms` fires each slot up to that long after it, by an
//! amount that depends only on the schedule id and the slot ([`jitter`]), so
//! every replica and every restart agree. The task still carries the slot
//! itself as `scheduled_at`.

use crate::Priority;
use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
use croner::parser::{CronParser, Seconds, Year};
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

/// Longest cron expression accepted, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// Longest time zone name accepted, in bytes (the longest IANA name is 32).
const MAX_TIMEZONE_LEN: usize = 64;

/// Most due slots [`plan`] counts one by one. Beyond this it still finds the
/// most recent slots (by bisection), but the slots in between are not
/// counted: the `missed` count is then a lower bound. A per-second cron
/// paused for a month would otherwise walk 2.6 million slots.
pub const MAX_COUNTED_SLOTS: usize = 10_000;

/// The shortcuts [`Cadence::parse`] accepts, and what they stand for.
const SHORTCUTS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// What a cron expression looks like, for error messages.
const CRON_SHAPE: &str = "5 fields (minute hour day-of-month month day-of-week), \
6 with seconds first, or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly";

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
        let zone = parse_zone(timezone)?;
        let cron_error = |message: String| ScheduleError {
            field: "cron",
            message,
        };
        if cron.len() > MAX_CRON_LEN {
            return Err(cron_error(format!(
                "cron is {} characters long; at most {MAX_CRON_LEN} are allowed",
                cron.len()
            )));
        }
        let trimmed = cron.trim();
        if trimmed.is_empty() {
            return Err(cron_error(format!("cron is empty; expected {CRON_SHAPE}")));
        }
        // Shortcuts are expanded here rather than by croner, which knows no
        // @midnight and would report an unknown one as an illegal character.
        let expression = if trimmed.starts_with('@') {
            let found = SHORTCUTS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(trimmed));
            match found {
                Some((_, expansion)) => *expansion,
                None => {
                    return Err(cron_error(format!(
                        "cron {cron:?} is not a known shortcut; expected {CRON_SHAPE}"
                    )));
                }
            }
        } else {
            trimmed
        };
        let seconds = match expression.split_whitespace().count() {
            5 => false,
            6 => true,
            7 => {
                return Err(cron_error(format!(
                    "cron {cron:?} has 7 fields, but a year field is not supported; expected {CRON_SHAPE}"
                )));
            }
            n => {
                return Err(cron_error(format!(
                    "cron {cron:?} has {n} fields; expected {CRON_SHAPE}"
                )));
            }
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let parsed = parser
            .parse(expression)
            .map_err(|error| cron_error(format!("cron {cron:?} is not valid: {error}")))?;
        Ok(Cadence {
            cron: parsed,
            zone,
            seconds,
        })
    }

    /// Whether the cron has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.seconds
    }

    /// The first slot strictly after `after`; `None` when the cron never
    /// matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Croner searches wall clock times (a `NaiveDateTime` never meets a
        // gap or a fold), and this maps each match to its instant by the
        // module's daylight saving rules. That mapping never goes back in
        // time as the wall clock goes forward, so the first match whose
        // instant is after `after` is the answer.
        let mut start = self.search_start(after);
        // Normally the first match is the answer; a match mapped onto an
        // instant already passed (a gap's end, an earlier twin) costs one
        // more round. The bound only stops a broken mapping from spinning.
        for _ in 0..64 {
            let wall = self.cron.find_next_occurrence(&start, false).ok()?;
            let instant = self.instant_of(wall)?;
            if instant > after {
                return Some(instant);
            }
            start = wall;
        }
        None
    }

    /// The wall clock time to search from, exclusive, for slots after
    /// `after`. Inside the second pass of a repeated range every wall time
    /// left in the range fires at its first pass, already behind, so the
    /// search starts at the end of the range.
    fn search_start(&self, after: DateTime<Utc>) -> NaiveDateTime {
        let local = after.with_timezone(&self.zone).naive_local();
        let Some(whole) = local.with_nanosecond(0) else {
            return local;
        };
        let LocalResult::Ambiguous(earlier, later) = self.zone.from_local_datetime(&whole) else {
            return local;
        };
        if after < later.to_utc() {
            return local;
        }
        let earlier = earlier.to_utc();
        let repeat = later.to_utc() - earlier;
        let later_offset = later.offset().fix();
        // The clock went back somewhere in (earlier, after].
        let change = first_second(earlier.timestamp(), after.timestamp(), |t| {
            self.zone.offset_from_utc_datetime(&t.naive_utc()).fix() == later_offset
        });
        match change.and_then(|change| change.checked_add_signed(repeat)) {
            // The first instant whose wall time happens once again, less a
            // second because the search is exclusive.
            Some(end) => end.with_timezone(&self.zone).naive_local() - TimeDelta::seconds(1),
            None => local,
        }
    }

    /// The instant wall time `wall` fires at: its only instant, the first of
    /// two in a repeated range, or the end of the gap it fell into.
    fn instant_of(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(instant) => Some(instant.to_utc()),
            LocalResult::Ambiguous(earlier, _) => Some(earlier.to_utc()),
            LocalResult::None => {
                // Offsets stay within ±15 hours, so the gap's end lies in
                // this window; the wall clock passes `wall` once in it.
                let guess = wall.and_utc().timestamp();
                first_second(guess - 15 * 3600, guess + 15 * 3600, |t| {
                    t.with_timezone(&self.zone).naive_local() > wall
                })
            }
        }
    }
}

/// Reads a time zone field: an IANA name, `UTC` when empty.
fn parse_zone(timezone: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    let zone_error = |message: String| ScheduleError {
        field: "timezone",
        message,
    };
    if timezone.is_empty() {
        return Ok(chrono_tz::Tz::UTC);
    }
    if timezone.len() > MAX_TIMEZONE_LEN {
        return Err(zone_error(format!(
            "timezone is {} characters long; it must be an IANA time zone name like Europe/Berlin, or UTC",
            timezone.len()
        )));
    }
    timezone.parse::<chrono_tz::Tz>().map_err(|_| {
        zone_error(format!(
            "timezone {timezone:?} is not a known time zone; it must be an IANA name like Europe/Berlin, or UTC"
        ))
    })
}

/// The first whole second in `(low, high]` (Unix seconds) at which `reached`
/// holds, for a `reached` that turns true once in that window and stays
/// true; `None` when it does not hold at `high`.
fn first_second(
    mut low: i64,
    mut high: i64,
    reached: impl Fn(DateTime<Utc>) -> bool,
) -> Option<DateTime<Utc>> {
    let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0);
    if !reached(at(high)?) {
        return None;
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if reached(at(middle)?) {
            high = middle;
        } else {
            low = middle;
        }
    }
    at(high)
}

/// How long after `slot` schedule `schedule_id` fires it, for a
/// `jitter_ms` of `max_ms`: from 0 to `max_ms` inclusive, the same for the
/// same arguments in every process.
pub fn jitter(schedule_id: &str, slot: DateTime<Utc>, max_ms: u64) -> Duration {
    if max_ms == 0 {
        return Duration::ZERO;
    }
    // FNV-1a: small, and fixed forever, unlike std's hasher, which may
    // change between Rust releases.
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let id = schedule_id.as_bytes();
    let millis = slot.timestamp_millis().to_le_bytes();
    for byte in id.iter().chain(&millis) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    let ms = match max_ms.checked_add(1) {
        Some(span) => hash % span,
        None => hash,
    };
    Duration::from_millis(ms)
}

/// When `slot` is due: the slot plus its jitter (the slot itself should the
/// sum leave chrono's range).
fn due_at(schedule_id: &str, slot: DateTime<Utc>, jitter_ms: u64) -> DateTime<Utc> {
    TimeDelta::from_std(jitter(schedule_id, slot, jitter_ms))
        .ok()
        .and_then(|delta| slot.checked_add_signed(delta))
        .unwrap_or(slot)
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
    let mut decided = Decisions::default();
    let mut running = previous_running;
    let mut queued = schedule.queued_fire_at;
    let grace = TimeDelta::from_std(ON_TIME_GRACE).unwrap_or(TimeDelta::MAX);
    // Lateness counts from when a slot is due, its jitter included: a slot
    // jittered past the grace is not late for that.
    let on_time =
        |slot: DateTime<Utc>| now - due_at(&schedule.id, slot, schedule.jitter_ms) <= grace;

    if let Some(slot) = queued.filter(|_| !previous_running) {
        let outcome = if on_time(slot) {
            FireOutcome::Fired
        } else {
            FireOutcome::CaughtUp
        };
        decided.fire(slot, outcome);
        queued = None;
        // The fire just released is now the schedule's running run.
        running = true;
    }

    let mut next_fire_at = schedule.next_fire_at;
    if let Some(first) = schedule.next_fire_at.filter(|first| *first <= now) {
        let due = due_slots(cadence, first, now);
        debug_assert!(!due.recent.is_empty(), "a due first slot is a due slot");
        decided.count(FireOutcome::Missed, due.older);
        let newest = due.recent.len().saturating_sub(1);
        let latest_on_time = due.recent.last().is_some_and(|slot| on_time(*slot));
        let mut chosen = Vec::new();
        for (index, slot) in due.recent.iter().copied().enumerate() {
            let latest = index == newest;
            let outcome = if latest && latest_on_time {
                FireOutcome::Fired
            } else {
                FireOutcome::CaughtUp
            };
            let fires = match schedule.catchup {
                CatchUp::Skip => latest && latest_on_time,
                CatchUp::Once => latest,
                CatchUp::All => newest - index < CATCHUP_LIMIT,
            };
            if fires {
                chosen.push((slot, outcome));
            } else {
                decided.decide(slot, FireOutcome::Missed);
            }
        }

        let newest_chosen = chosen.len().saturating_sub(1);
        for (index, (slot, outcome)) in chosen.into_iter().enumerate() {
            if !running || schedule.overlap == Overlap::Allow {
                decided.fire(slot, outcome);
                continue;
            }
            if schedule.overlap == Overlap::Queue && queued.is_none() && index == newest_chosen {
                queued = Some(slot);
                continue;
            }
            decided.decide(slot, FireOutcome::SkippedOverlap);
        }
        next_fire_at = cadence.next_after(now);
    }

    Plan {
        next_due_at: next_fire_at.map(|slot| due_at(&schedule.id, slot, schedule.jitter_ms)),
        next_fire_at,
        queued_fire_at: queued,
        fire: decided.fire,
        not_fired: decided.not_fired,
        last_outcome: decided.latest.map(|(_, outcome)| outcome),
    }
}

/// The outcomes [`plan`] has decided so far.
#[derive(Default)]
struct Decisions {
    fire: Vec<(DateTime<Utc>, FireOutcome)>,
    not_fired: Vec<(FireOutcome, u64)>,
    latest: Option<(DateTime<Utc>, FireOutcome)>,
}

impl Decisions {
    fn fire(&mut self, slot: DateTime<Utc>, outcome: FireOutcome) {
        debug_assert!(outcome.submitted());
        self.fire.push((slot, outcome));
        self.note(slot, outcome);
    }

    /// Records a slot that fires nothing.
    fn decide(&mut self, slot: DateTime<Utc>, outcome: FireOutcome) {
        self.count(outcome, 1);
        self.note(slot, outcome);
    }

    /// Counts slots that fire nothing, without knowing which they are
    /// (they are older than any slot decided by name).
    fn count(&mut self, outcome: FireOutcome, slots: u64) {
        if slots == 0 {
            return;
        }
        match self.not_fired.iter_mut().find(|(seen, _)| *seen == outcome) {
            Some((_, total)) => *total += slots,
            None => self.not_fired.push((outcome, slots)),
        }
    }

    fn note(&mut self, slot: DateTime<Utc>, outcome: FireOutcome) {
        if self.latest.is_none_or(|(latest, _)| slot >= latest) {
            self.latest = Some((slot, outcome));
        }
    }
}

/// The due slots of a schedule: those from `first` to `now`.
struct DueSlots {
    /// The most recent ones, oldest first: up to [`CATCHUP_LIMIT`] + 1, so
    /// the newest slot a catch-up rule lets go is among them.
    recent: Vec<DateTime<Utc>>,
    /// How many older ones there are; a lower bound when there are more
    /// than [`MAX_COUNTED_SLOTS`].
    older: u64,
}

/// Finds the due slots from `first` (a slot, inclusive) to `now`
/// (inclusive), walking at most about [`MAX_COUNTED_SLOTS`] of them.
fn due_slots(cadence: &Cadence, first: DateTime<Utc>, now: DateTime<Utc>) -> DueSlots {
    const KEEP: usize = CATCHUP_LIMIT + 1;
    let mut recent = std::collections::VecDeque::with_capacity(KEEP + 1);
    let mut older = 0u64;
    let mut walked = 0usize;
    let mut slot = Some(first);
    while let Some(current) = slot.filter(|current| *current <= now) {
        if walked == MAX_COUNTED_SLOTS {
            // Too many to walk: jump to the most recent ones. Those between
            // go uncounted.
            let tail = recent_before(cadence, current, now, KEEP);
            let mut slots: Vec<_> = recent.into();
            slots.extend(tail);
            let cut = slots.len().saturating_sub(KEEP);
            return DueSlots {
                recent: slots.split_off(cut),
                older: older + cut as u64,
            };
        }
        walked += 1;
        recent.push_back(current);
        if recent.len() > KEEP {
            recent.pop_front();
            older += 1;
        }
        slot = cadence.next_after(current);
    }
    DueSlots {
        recent: recent.into(),
        older,
    }
}

/// The last `keep` slots in `[from, now]`, oldest first, for a `from` that is
/// a slot, found without walking the slots before them: bisects for the
/// latest start that still leaves `keep` slots before `now`.
fn recent_before(
    cadence: &Cadence,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: usize,
) -> Vec<DateTime<Utc>> {
    // Up to `keep` slots from `start` (inclusive) to `now`.
    let walk = |start: DateTime<Utc>| {
        let mut slots = Vec::with_capacity(keep);
        let mut slot = cadence.next_after(start - TimeDelta::milliseconds(1));
        while let Some(current) = slot.filter(|current| *current <= now) {
            slots.push(current);
            if slots.len() == keep {
                break;
            }
            slot = cadence.next_after(current);
        }
        slots
    };
    // At most one slot starts in any millisecond, so the number from a start
    // on falls by one at a time as the start moves on: some start has
    // exactly `keep`, unless even `from` has fewer.
    let mut low = from.timestamp_millis();
    let mut high = now.timestamp_millis();
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(now);
    if walk(at(low)).len() < keep {
        return walk(at(low));
    }
    // `low` leaves `keep` slots; `high` + 1 none.
    high += 1;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if walk(at(middle)).len() == keep {
            low = middle;
        } else {
            high = middle;
        }
    }
    walk(at(low))
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
    let next = cadence.next_after(now);
    (next, next.map(|slot| due_at(schedule_id, slot, jitter_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn cadence(cron: &str, zone: &str) -> Cadence {
        Cadence::parse(cron, zone).unwrap()
    }

    /// The first `n` slots after `from`.
    fn slots(cadence: &Cadence, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = from;
        for _ in 0..n {
            at = cadence.next_after(at).unwrap();
            out.push(at);
        }
        out
    }

    fn error(cron: &str, zone: &str) -> ScheduleError {
        Cadence::parse(cron, zone).unwrap_err()
    }

    #[test]
    fn five_field_cron_fires_on_the_minute() {
        let every = cadence("*/15 9 * * 1-5", "UTC");
        assert!(!every.has_seconds());
        // 2024-05-15 is a Wednesday.
        assert_eq!(
            slots(&every, utc(2024, 5, 15, 9, 20, 0), 3),
            [
                utc(2024, 5, 15, 9, 30, 0),
                utc(2024, 5, 15, 9, 45, 0),
                utc(2024, 5, 16, 9, 0, 0)
            ]
        );
    }

    #[test]
    fn six_field_cron_reads_seconds_first() {
        let every = cadence("*/20 * * * * *", "UTC");
        assert!(every.has_seconds());
        assert_eq!(
            slots(&every, utc(2024, 5, 15, 12, 0, 0), 3),
            [
                utc(2024, 5, 15, 12, 0, 20),
                utc(2024, 5, 15, 12, 0, 40),
                utc(2024, 5, 15, 12, 1, 0)
            ]
        );
    }

    #[test]
    fn next_after_is_strictly_after_even_within_the_slot_second() {
        let every = cadence("* * * * * *", "UTC");
        let slot = utc(2024, 5, 15, 12, 0, 0);
        assert_eq!(every.next_after(slot), Some(slot + TimeDelta::seconds(1)));
        let inside = slot + TimeDelta::milliseconds(300);
        assert_eq!(every.next_after(inside), Some(slot + TimeDelta::seconds(1)));
    }

    #[test]
    fn every_shortcut_fires_where_its_expansion_does() {
        // A Wednesday.
        let from = utc(2024, 5, 15, 10, 20, 30);
        let cases = [
            ("@yearly", utc(2025, 1, 1, 0, 0, 0)),
            ("@annually", utc(2025, 1, 1, 0, 0, 0)),
            ("@monthly", utc(2024, 6, 1, 0, 0, 0)),
            ("@weekly", utc(2024, 5, 19, 0, 0, 0)),
            ("@daily", utc(2024, 5, 16, 0, 0, 0)),
            ("@midnight", utc(2024, 5, 16, 0, 0, 0)),
            ("@hourly", utc(2024, 5, 15, 11, 0, 0)),
            ("@DAILY", utc(2024, 5, 16, 0, 0, 0)),
            (" @hourly ", utc(2024, 5, 15, 11, 0, 0)),
        ];
        for (cron, next) in cases {
            let shortcut = cadence(cron, "UTC");
            assert!(!shortcut.has_seconds(), "{cron}");
            assert_eq!(shortcut.next_after(from), Some(next), "{cron}");
        }
    }

    #[test]
    fn shortcuts_read_in_the_schedule_zone() {
        let daily = cadence("@daily", "Europe/Berlin");
        assert_eq!(
            daily.next_after(utc(2024, 5, 15, 12, 0, 0)),
            Some(utc(2024, 5, 15, 22, 0, 0))
        );
    }

    #[test]
    fn bad_crons_are_refused_naming_the_cron_field() {
        let long = "* ".repeat(200);
        for cron in [
            "",
            "   ",
            "* * * *",
            "0 0 0 1 1 * 2030",
            "61 * * * *",
            "* * * * * * * *",
            "@every 5m",
            "@reboot",
            "0 0 * * MOON",
            long.as_str(),
        ] {
            let refused = error(cron, "UTC");
            assert_eq!(refused.field, "cron", "{cron:?}");
            assert!(!refused.message.is_empty());
        }
        assert!(
            error("0 0 0 1 1 * 2030", "UTC")
                .message
                .contains("year field is not supported")
        );
        assert!(
            error("61 * * * *", "UTC")
                .message
                .contains("\"61 * * * *\"")
        );
        assert!(error("", "UTC").message.contains("empty"));
        assert!(error(&long, "UTC").message.contains("at most 256"));
    }

    #[test]
    fn bad_zones_are_refused_naming_the_timezone_field_and_an_example() {
        for zone in ["Mars/Olympus", "europe/berlin", "CEST+2", &"x".repeat(300)] {
            let refused = error("0 * * * *", zone);
            assert_eq!(refused.field, "timezone", "{zone:?}");
            assert!(
                refused.message.contains("Europe/Berlin"),
                "{}",
                refused.message
            );
        }
        assert!(
            error("0 * * * *", "Mars/Olympus")
                .message
                .contains("\"Mars/Olympus\"")
        );
    }

    #[test]
    fn empty_and_utc_zones_are_utc() {
        let from = utc(2024, 5, 15, 10, 20, 0);
        for zone in ["", "UTC", "Etc/UTC"] {
            assert_eq!(
                cadence("0 12 * * *", zone).next_after(from),
                Some(utc(2024, 5, 15, 12, 0, 0))
            );
        }
    }

    #[test]
    fn a_zone_error_comes_before_a_cron_error() {
        // Both are wrong; either answer names one field, and it is stable.
        assert_eq!(error("nope", "Nowhere/Land").field, "timezone");
    }

    // Europe/Berlin springs forward on 2024-03-31 at 01:00 UTC (02:00 CET
    // becomes 03:00 CEST) and falls back on 2024-10-27 at 01:00 UTC (03:00
    // CEST becomes 02:00 CET). America/New_York springs forward on
    // 2024-03-10 at 07:00 UTC (02:00 EST becomes 03:00 EDT) and falls back
    // on 2024-11-03 at 06:00 UTC (02:00 EDT becomes 01:00 EST).

    #[test]
    fn daily_slot_in_a_berlin_spring_gap_fires_once_at_the_end_of_the_gap() {
        let daily = cadence("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            slots(&daily, utc(2024, 3, 30, 0, 0, 0), 3),
            [
                utc(2024, 3, 30, 1, 30, 0), // 02:30 CET
                utc(2024, 3, 31, 1, 0, 0),  // 03:00 CEST: 02:30 does not exist
                utc(2024, 4, 1, 0, 30, 0),  // 02:30 CEST
            ]
        );
    }

    #[test]
    fn daily_slot_in_a_berlin_fall_back_fires_once_at_its_first_occurrence() {
        let daily = cadence("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            slots(&daily, utc(2024, 10, 26, 0, 0, 0), 3),
            [
                utc(2024, 10, 26, 0, 30, 0), // 02:30 CEST
                utc(2024, 10, 27, 0, 30, 0), // 02:30 CEST, not 01:30 UTC (CET)
                utc(2024, 10, 28, 1, 30, 0), // 02:30 CET
            ]
        );
    }

    #[test]
    fn daily_slot_in_a_new_york_spring_gap_fires_once_at_the_end_of_the_gap() {
        let daily = cadence("30 2 * * *", "America/New_York");
        assert_eq!(
            slots(&daily, utc(2024, 3, 9, 0, 0, 0), 3),
            [
                utc(2024, 3, 9, 7, 30, 0),  // 02:30 EST
                utc(2024, 3, 10, 7, 0, 0),  // 03:00 EDT: 02:30 does not exist
                utc(2024, 3, 11, 6, 30, 0), // 02:30 EDT
            ]
        );
    }

    #[test]
    fn daily_slot_in_a_new_york_fall_back_fires_once_at_its_first_occurrence() {
        let daily = cadence("30 1 * * *", "America/New_York");
        assert_eq!(
            slots(&daily, utc(2024, 11, 2, 0, 0, 0), 3),
            [
                utc(2024, 11, 2, 5, 30, 0), // 01:30 EDT
                utc(2024, 11, 3, 5, 30, 0), // 01:30 EDT, not 06:30 UTC (EST)
                utc(2024, 11, 4, 6, 30, 0), // 01:30 EST
            ]
        );
    }

    #[test]
    fn searching_from_the_second_pass_of_a_fall_back_skips_the_repeat() {
        // 06:10 UTC is 01:10 EST, the second pass: 01:30 fired at its first.
        let daily = cadence("30 1 * * *", "America/New_York");
        assert_eq!(
            daily.next_after(utc(2024, 11, 3, 6, 10, 0)),
            Some(utc(2024, 11, 4, 6, 30, 0))
        );
        // 01:10 UTC is 02:10 CET, the second pass in Berlin.
        let minutely = cadence("* * * * *", "Europe/Berlin");
        assert_eq!(
            minutely.next_after(utc(2024, 10, 27, 1, 10, 0)),
            Some(utc(2024, 10, 27, 2, 0, 0)) // 03:00 CET
        );
        // In the first pass every minute still fires.
        assert_eq!(
            minutely.next_after(utc(2024, 10, 27, 0, 10, 0)),
            Some(utc(2024, 10, 27, 0, 11, 0))
        );
    }

    #[test]
    fn hourly_in_a_berlin_spring_gap_loses_only_the_missing_hour() {
        let hourly = cadence("0 * * * *", "Europe/Berlin");
        assert_eq!(
            slots(&hourly, utc(2024, 3, 30, 22, 30, 0), 4),
            [
                utc(2024, 3, 30, 23, 0, 0), // 00:00 CET
                utc(2024, 3, 31, 0, 0, 0),  // 01:00 CET
                utc(2024, 3, 31, 1, 0, 0),  // 03:00 CEST (02:00 lands here too)
                utc(2024, 3, 31, 2, 0, 0),  // 04:00 CEST
            ]
        );
        // A slot at half past moves to the end of the gap, not away.
        let half_past = cadence("30 * * * *", "Europe/Berlin");
        assert_eq!(
            slots(&half_past, utc(2024, 3, 30, 23, 45, 0), 4),
            [
                utc(2024, 3, 31, 0, 30, 0), // 01:30 CET
                utc(2024, 3, 31, 1, 0, 0),  // 02:30, nonexistent: 03:00 CEST
                utc(2024, 3, 31, 1, 30, 0), // 03:30 CEST
                utc(2024, 3, 31, 2, 30, 0), // 04:30 CEST
            ]
        );
    }

    #[test]
    fn hourly_in_a_berlin_fall_back_fires_the_repeated_hour_once() {
        let hourly = cadence("0 * * * *", "Europe/Berlin");
        assert_eq!(
            slots(&hourly, utc(2024, 10, 26, 22, 30, 0), 4),
            [
                utc(2024, 10, 26, 23, 0, 0), // 01:00 CEST
                utc(2024, 10, 27, 0, 0, 0),  // 02:00 CEST; not again at 02:00 CET
                utc(2024, 10, 27, 2, 0, 0),  // 03:00 CET
                utc(2024, 10, 27, 3, 0, 0),  // 04:00 CET
            ]
        );
    }

    #[test]
    fn hourly_in_a_new_york_spring_gap_loses_only_the_missing_hour() {
        let hourly = cadence("0 * * * *", "America/New_York");
        assert_eq!(
            slots(&hourly, utc(2024, 3, 10, 5, 30, 0), 3),
            [
                utc(2024, 3, 10, 6, 0, 0), // 01:00 EST
                utc(2024, 3, 10, 7, 0, 0), // 03:00 EDT (02:00 lands here too)
                utc(2024, 3, 10, 8, 0, 0), // 04:00 EDT
            ]
        );
    }

    #[test]
    fn hourly_in_a_new_york_fall_back_fires_the_repeated_hour_once() {
        let hourly = cadence("0 * * * *", "America/New_York");
        assert_eq!(
            slots(&hourly, utc(2024, 11, 3, 3, 30, 0), 4),
            [
                utc(2024, 11, 3, 4, 0, 0), // 00:00 EDT
                utc(2024, 11, 3, 5, 0, 0), // 01:00 EDT; not again at 01:00 EST
                utc(2024, 11, 3, 7, 0, 0), // 02:00 EST
                utc(2024, 11, 3, 8, 0, 0), // 03:00 EST
            ]
        );
    }

    #[test]
    fn a_cron_that_never_matches_has_no_next_slot_and_answers_quickly() {
        let started = Instant::now();
        for cron in [
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
            "* * 31 2 *",
            "0 0 0 30 2 *",
        ] {
            assert_eq!(
                cadence(cron, "Europe/Berlin").next_after(utc(2024, 1, 1, 0, 0, 0)),
                None,
                "{cron}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let (next, due) = first_slot("s", &cadence("0 0 30 2 *", "UTC"), 1000, Utc::now());
        assert_eq!((next, due), (None, None));
    }

    #[test]
    fn jitter_is_deterministic_and_in_range() {
        let slot = utc(2024, 5, 15, 12, 0, 0);
        assert_eq!(jitter("a", slot, 0), Duration::ZERO);
        assert_eq!(jitter("a", slot, 5000), jitter("a", slot, 5000));
        let mut distinct = std::collections::HashSet::new();
        for minute in 0..500 {
            let at = slot + TimeDelta::minutes(minute);
            let ms = jitter("schedule-1", at, 1000);
            assert!(ms <= Duration::from_millis(1000));
            distinct.insert(ms);
        }
        // It spreads, rather than always answering the same.
        assert!(distinct.len() > 100, "{}", distinct.len());
        assert_ne!(
            (0..20)
                .map(|m| jitter("x", slot + TimeDelta::minutes(m), MAX_JITTER_MS))
                .collect::<Vec<_>>(),
            (0..20)
                .map(|m| jitter("y", slot + TimeDelta::minutes(m), MAX_JITTER_MS))
                .collect::<Vec<_>>()
        );
        // The widest span does not overflow.
        let _ = jitter("a", slot, u64::MAX);
        // Pinned (worked out by a separate FNV-1a), so a change to the hash
        // shows up here: it would move every schedule's fires.
        assert_eq!(jitter("a", slot, 1000), Duration::from_millis(506));
        assert_eq!(
            jitter("a", slot, MAX_JITTER_MS),
            Duration::from_millis(1_934_680)
        );
    }

    #[test]
    fn first_slot_is_the_next_slot_plus_its_jitter() {
        let hourly = cadence("0 * * * *", "UTC");
        let now = utc(2024, 5, 15, 10, 20, 0);
        let slot = utc(2024, 5, 15, 11, 0, 0);
        let (next, due) = first_slot("s", &hourly, 60_000, now);
        assert_eq!(next, Some(slot));
        assert_eq!(
            due,
            Some(slot + TimeDelta::from_std(jitter("s", slot, 60_000)).unwrap())
        );
        assert_eq!(first_slot("s", &hourly, 0, now), (Some(slot), Some(slot)));
    }

    fn schedule(
        catchup: CatchUp,
        overlap: Overlap,
        next_fire_at: DateTime<Utc>,
        queued_fire_at: Option<DateTime<Utc>>,
    ) -> Schedule {
        let created = utc(2024, 1, 1, 0, 0, 0);
        Schedule {
            id: "7b0c1a5e-0000-4000-8000-000000000001".to_owned(),
            project_id: "p".to_owned(),
            name: "nightly".to_owned(),
            pipeline_id: "pl".to_owned(),
            pipeline_ids: vec!["pl".to_owned()],
            cron: "* * * * *".to_owned(),
            timezone: "UTC".to_owned(),
            parameters: Map::new(),
            priority: Priority::default(),
            enabled: true,
            catchup,
            overlap,
            jitter_ms: 0,
            next_fire_at: Some(next_fire_at),
            next_due_at: Some(next_fire_at),
            queued_fire_at,
            last_fire_at: None,
            last_task_id: None,
            last_task_ids: Vec::new(),
            last_outcome: None,
            revision: 1,
            created_at: created,
            updated_at: created,
        }
    }

    /// 2024-05-15 at `h:m:s`.
    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        utc(2024, 5, 15, h, m, s)
    }

    fn minutely() -> Cadence {
        cadence("* * * * *", "UTC")
    }

    /// Plans a minutely schedule.
    fn plan_minutely(
        catchup: CatchUp,
        overlap: Overlap,
        next_fire_at: DateTime<Utc>,
        queued: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        previous_running: bool,
    ) -> Plan {
        let s = schedule(catchup, overlap, next_fire_at, queued);
        plan(&s, &minutely(), now, previous_running)
    }

    use CatchUp as C;
    use FireOutcome::{CaughtUp, Fired, Missed, SkippedOverlap};
    use Overlap as O;

    #[test]
    fn catchup_skip_fires_the_latest_slot_when_on_time_and_misses_the_rest() {
        let p = plan_minutely(C::Skip, O::Allow, at(11, 55, 0), None, at(12, 0, 10), false);
        assert_eq!(p.fire, [(at(12, 0, 0), Fired)]);
        assert_eq!(p.not_fired, [(Missed, 5)]);
        assert_eq!(p.last_outcome, Some(Fired));
        assert_eq!(p.next_fire_at, Some(at(12, 1, 0)));
        assert_eq!(p.next_due_at, Some(at(12, 1, 0)));
        assert_eq!(p.queued_fire_at, None);
    }

    #[test]
    fn catchup_skip_misses_everything_when_the_latest_is_late() {
        let p = plan_minutely(C::Skip, O::Allow, at(11, 55, 0), None, at(12, 0, 40), false);
        assert_eq!(p.fire, []);
        assert_eq!(p.not_fired, [(Missed, 6)]);
        assert_eq!(p.last_outcome, Some(Missed));
        assert_eq!(p.next_fire_at, Some(at(12, 1, 0)));
    }

    #[test]
    fn on_time_counts_from_the_jittered_due_time() {
        let mut s = schedule(C::Skip, O::Allow, at(12, 0, 0), None);
        s.jitter_ms = 600_000;
        let due = at(12, 0, 0) + TimeDelta::from_std(jitter(&s.id, at(12, 0, 0), 600_000)).unwrap();
        let p = plan(
            &s,
            &cadence("0 * * * *", "UTC"),
            due + TimeDelta::seconds(5),
            false,
        );
        assert_eq!(p.fire, [(at(12, 0, 0), Fired)]);
        let next = at(13, 0, 0);
        assert_eq!(p.next_fire_at, Some(next));
        assert_eq!(
            p.next_due_at,
            Some(next + TimeDelta::from_std(jitter(&s.id, next, 600_000)).unwrap())
        );
    }

    #[test]
    fn catchup_once_fires_the_latest_slot_however_late() {
        let p = plan_minutely(C::Once, O::Allow, at(11, 55, 0), None, at(12, 0, 40), false);
        assert_eq!(p.fire, [(at(12, 0, 0), CaughtUp)]);
        assert_eq!(p.not_fired, [(Missed, 5)]);
        assert_eq!(p.last_outcome, Some(CaughtUp));

        let p = plan_minutely(C::Once, O::Allow, at(11, 55, 0), None, at(12, 0, 10), false);
        assert_eq!(p.fire, [(at(12, 0, 0), Fired)]);
    }

    #[test]
    fn catchup_all_fires_every_due_slot_oldest_first() {
        let p = plan_minutely(C::All, O::Allow, at(11, 57, 0), None, at(12, 0, 10), false);
        assert_eq!(
            p.fire,
            [
                (at(11, 57, 0), CaughtUp),
                (at(11, 58, 0), CaughtUp),
                (at(11, 59, 0), CaughtUp),
                (at(12, 0, 0), Fired)
            ]
        );
        assert_eq!(p.not_fired, []);
        assert_eq!(p.last_outcome, Some(Fired));

        let p = plan_minutely(C::All, O::Allow, at(11, 58, 0), None, at(12, 0, 40), false);
        assert_eq!(
            p.fire,
            [
                (at(11, 58, 0), CaughtUp),
                (at(11, 59, 0), CaughtUp),
                (at(12, 0, 0), CaughtUp)
            ]
        );
    }

    #[test]
    fn catchup_all_fires_at_most_the_limit_of_the_most_recent_slots() {
        // 151 due slots: 09:30 to 12:00.
        let p = plan_minutely(C::All, O::Allow, at(9, 30, 0), None, at(12, 0, 10), false);
        assert_eq!(p.fire.len(), CATCHUP_LIMIT);
        assert_eq!(p.fire[0], (at(10, 21, 0), CaughtUp));
        assert_eq!(p.fire[CATCHUP_LIMIT - 1], (at(12, 0, 0), Fired));
        assert_eq!(p.not_fired, [(Missed, 51)]);
    }

    #[test]
    fn overlap_allow_fires_while_the_previous_run_goes_on() {
        let p = plan_minutely(C::All, O::Allow, at(11, 59, 0), None, at(12, 0, 10), true);
        assert_eq!(p.fire, [(at(11, 59, 0), CaughtUp), (at(12, 0, 0), Fired)]);
        assert_eq!(p.not_fired, []);
    }

    #[test]
    fn overlap_skip_fires_nothing_while_the_previous_run_goes_on() {
        for catchup in [C::Skip, C::Once] {
            let p = plan_minutely(catchup, O::Skip, at(11, 58, 0), None, at(12, 0, 10), true);
            assert_eq!(p.fire, []);
            assert_eq!(p.not_fired, [(Missed, 2), (SkippedOverlap, 1)]);
            assert_eq!(p.last_outcome, Some(SkippedOverlap));
            assert_eq!(p.queued_fire_at, None);
        }
        let p = plan_minutely(C::All, O::Skip, at(11, 58, 0), None, at(12, 0, 10), true);
        assert_eq!(p.fire, []);
        assert_eq!(p.not_fired, [(SkippedOverlap, 3)]);
        assert_eq!(p.next_fire_at, Some(at(12, 1, 0)));
        // Missed stays missed: overlap only judges what catch-up chose.
        let p = plan_minutely(C::Skip, O::Skip, at(11, 58, 0), None, at(12, 0, 40), true);
        assert_eq!(p.not_fired, [(Missed, 3)]);
        assert_eq!(p.last_outcome, Some(Missed));
    }

    #[test]
    fn overlap_skip_and_queue_fire_normally_when_nothing_runs() {
        for overlap in [O::Skip, O::Queue] {
            let p = plan_minutely(C::All, overlap, at(11, 59, 0), None, at(12, 0, 10), false);
            assert_eq!(p.fire, [(at(11, 59, 0), CaughtUp), (at(12, 0, 0), Fired)]);
            assert_eq!(p.queued_fire_at, None);
        }
    }

    #[test]
    fn overlap_queue_keeps_the_latest_chosen_slot_and_skips_the_others() {
        let p = plan_minutely(C::All, O::Queue, at(11, 58, 0), None, at(12, 0, 10), true);
        assert_eq!(p.fire, []);
        assert_eq!(p.queued_fire_at, Some(at(12, 0, 0)));
        assert_eq!(p.not_fired, [(SkippedOverlap, 2)]);
        assert_eq!(p.last_outcome, Some(SkippedOverlap));

        let p = plan_minutely(C::Once, O::Queue, at(11, 58, 0), None, at(12, 0, 40), true);
        assert_eq!(p.queued_fire_at, Some(at(12, 0, 0)));
        assert_eq!(p.not_fired, [(Missed, 2)]);
        assert_eq!(p.last_outcome, Some(Missed));
    }

    #[test]
    fn a_slot_only_moved_to_the_queue_decides_nothing() {
        let p = plan_minutely(C::Skip, O::Queue, at(12, 0, 0), None, at(12, 0, 10), true);
        assert_eq!(p.fire, []);
        assert_eq!(p.not_fired, []);
        assert_eq!(p.queued_fire_at, Some(at(12, 0, 0)));
        assert_eq!(p.last_outcome, None);
        assert_eq!(p.next_fire_at, Some(at(12, 1, 0)));
    }

    #[test]
    fn overlap_queue_coalesces_slots_arriving_while_one_is_queued() {
        let queued = Some(at(11, 30, 0));
        let p = plan_minutely(C::All, O::Queue, at(11, 59, 0), queued, at(12, 0, 10), true);
        assert_eq!(p.fire, []);
        assert_eq!(p.queued_fire_at, queued);
        assert_eq!(p.not_fired, [(SkippedOverlap, 2)]);
        assert_eq!(p.last_outcome, Some(SkippedOverlap));
    }

    #[test]
    fn a_queued_fire_waits_while_the_previous_run_goes_on() {
        let queued = Some(at(11, 59, 50));
        let p = plan_minutely(C::Skip, O::Queue, at(12, 1, 0), queued, at(12, 0, 10), true);
        assert_eq!(
            p,
            Plan {
                fire: vec![],
                not_fired: vec![],
                last_outcome: None,
                next_fire_at: Some(at(12, 1, 0)),
                next_due_at: Some(at(12, 1, 0)),
                queued_fire_at: queued,
            }
        );
    }

    #[test]
    fn a_queued_fire_is_released_when_the_previous_run_ends() {
        // On time.
        let p = plan_minutely(
            C::Skip,
            O::Queue,
            at(12, 1, 0),
            Some(at(11, 59, 50)),
            at(12, 0, 10),
            false,
        );
        assert_eq!(p.fire, [(at(11, 59, 50), Fired)]);
        assert_eq!(p.queued_fire_at, None);
        assert_eq!(p.last_outcome, Some(Fired));
        assert_eq!(p.next_fire_at, Some(at(12, 1, 0)));
        // Late.
        let p = plan_minutely(
            C::Skip,
            O::Queue,
            at(12, 1, 0),
            Some(at(11, 30, 0)),
            at(12, 0, 10),
            false,
        );
        assert_eq!(p.fire, [(at(11, 30, 0), CaughtUp)]);
        assert_eq!(p.last_outcome, Some(CaughtUp));
    }

    #[test]
    fn after_a_released_queued_fire_the_due_slots_meet_the_overlap_rule() {
        let queued = Some(at(11, 59, 0));
        // Queue: the new slot takes the queue the released fire left.
        let p = plan_minutely(
            C::Skip,
            O::Queue,
            at(12, 0, 0),
            queued,
            at(12, 0, 10),
            false,
        );
        assert_eq!(p.fire, [(at(11, 59, 0), CaughtUp)]);
        assert_eq!(p.queued_fire_at, Some(at(12, 0, 0)));
        assert_eq!(p.not_fired, []);
        assert_eq!(p.last_outcome, Some(CaughtUp));
        // Skip: the new slot is skipped.
        let p = plan_minutely(C::Skip, O::Skip, at(12, 0, 0), queued, at(12, 0, 10), false);
        assert_eq!(p.fire, [(at(11, 59, 0), CaughtUp)]);
        assert_eq!(p.not_fired, [(SkippedOverlap, 1)]);
        assert_eq!(p.last_outcome, Some(SkippedOverlap));
        assert_eq!(p.queued_fire_at, None);
        // Allow: both fire, oldest first.
        let p = plan_minutely(
            C::Skip,
            O::Allow,
            at(12, 0, 0),
            queued,
            at(12, 0, 10),
            false,
        );
        assert_eq!(p.fire, [(at(11, 59, 0), CaughtUp), (at(12, 0, 0), Fired)]);
        assert_eq!(p.last_outcome, Some(Fired));
    }

    #[test]
    fn a_schedule_not_yet_due_keeps_its_next_slot() {
        let p = plan_minutely(C::All, O::Allow, at(12, 1, 0), None, at(12, 0, 10), false);
        assert_eq!(p.fire, []);
        assert_eq!(p.last_outcome, None);
        assert_eq!(p.next_fire_at, Some(at(12, 1, 0)));
        assert_eq!(p.next_due_at, Some(at(12, 1, 0)));
    }

    #[test]
    fn a_per_second_schedule_paused_for_a_month_plans_in_bounded_time() {
        let now = utc(2024, 6, 15, 12, 0, 0);
        let s = schedule(C::All, O::Allow, now - TimeDelta::days(30), None);
        let every_second = cadence("* * * * * *", "Europe/Berlin");
        let started = Instant::now();
        let p = plan(&s, &every_second, now, false);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert_eq!(p.fire.len(), CATCHUP_LIMIT);
        for (index, (slot, outcome)) in p.fire.iter().enumerate() {
            let back = (CATCHUP_LIMIT - 1 - index) as i64;
            assert_eq!(*slot, now - TimeDelta::seconds(back));
            assert_eq!(*outcome, if back == 0 { Fired } else { CaughtUp });
        }
        // Counted up to the bound, not all 2.6 million.
        let [(Missed, missed)] = p.not_fired[..] else {
            panic!("{:?}", p.not_fired)
        };
        // The walked slots, and the one just older than those fired.
        assert_eq!(missed, MAX_COUNTED_SLOTS as u64 + 1);
        assert_eq!(p.next_fire_at, Some(now + TimeDelta::seconds(1)));

        // Skip and once find the latest slot the same way.
        for catchup in [C::Skip, C::Once] {
            let s = schedule(catchup, O::Allow, now - TimeDelta::days(30), None);
            let p = plan(&s, &every_second, now, false);
            assert_eq!(p.fire, [(now, Fired)]);
        }
    }

    #[test]
    fn the_bisection_finds_the_most_recent_slots_of_an_uneven_cron() {
        // Every second of one hour a day: the slots bunch up.
        let bunched = cadence("* * 3 * * *", "UTC");
        let now = utc(2024, 6, 15, 12, 0, 0);
        let s = schedule(C::All, O::Allow, utc(2024, 6, 1, 3, 0, 0), None);
        let p = plan(&s, &bunched, now, false);
        assert_eq!(p.fire.len(), CATCHUP_LIMIT);
        assert_eq!(
            p.fire[CATCHUP_LIMIT - 1],
            (utc(2024, 6, 15, 3, 59, 59), CaughtUp)
        );
        assert_eq!(p.fire[0].0, utc(2024, 6, 15, 3, 58, 20));
        assert_eq!(p.next_fire_at, Some(utc(2024, 6, 16, 3, 0, 0)));
    }

    fn small_cron() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["", "0 ", "*/20 ", "5,45 "]),
            prop::sample::select(vec!["*", "0", "*/7", "5,35", "10-20"]),
            prop::sample::select(vec!["*", "2", "*/5", "1-3", "0,12"]),
            prop::sample::select(vec!["*", "1", "15", "L"]),
            prop::sample::select(vec!["*", "3", "10,11"]),
            prop::sample::select(vec!["*", "0", "1-5"]),
        )
            .prop_map(|(s, mi, h, dom, mo, dow)| format!("{s}{mi} {h} {dom} {mo} {dow}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn planned_fires_are_increasing_due_and_next_is_after_now(
            cron in small_cron(),
            zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
            now_secs in 1_704_067_200i64..1_767_225_600, // 2024 and 2025
            paused_secs in 0i64..3 * 86_400,
            catchup in prop::sample::select(vec![C::Skip, C::Once, C::All]),
            overlap in prop::sample::select(vec![O::Allow, O::Skip, O::Queue]),
            previous_running in any::<bool>(),
        ) {
            let cadence = cadence(&cron, zone);
            let now = DateTime::from_timestamp(now_secs, 0).unwrap();
            let Some(old_next) = cadence.next_after(now - TimeDelta::seconds(paused_secs)) else {
                return Ok(());
            };
            let s = schedule(catchup, overlap, old_next, None);
            let p = plan(&s, &cadence, now, previous_running);
            for pair in p.fire.windows(2) {
                prop_assert!(pair[0].0 < pair[1].0, "{:?}", p.fire);
            }
            for (slot, outcome) in &p.fire {
                prop_assert!(*slot <= now);
                prop_assert!(*slot >= old_next);
                prop_assert!(outcome.submitted());
            }
            if let Some(next) = p.next_fire_at {
                prop_assert!(next > now);
            }
            if let Some(queued) = p.queued_fire_at {
                prop_assert!(queued >= old_next && queued <= now);
            }
        }
    }
}
