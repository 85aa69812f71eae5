//! The Pipelines page's figures: run time per pipeline, per step and per
//! plugin action, since the orchestrator started, from the step times each
//! attempt reports.
//!
//! Prometheus histograms have a dozen fixed buckets: a quantile read from them
//! is a guess within a bucket (runs that all took 51 ms read as p50 150 ms).
//! Here each distribution is a [`MergedHistogram`] (±4.5%) with the exact
//! count, sum, least and greatest value, so the mean is exact and a quantile is
//! within 4.5% and never outside the values seen: runs that all took the same
//! time read as exactly that time.

use super::log_histogram::MergedHistogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;

/// The most a quantile read from these figures is off, relative to the exact value.
pub const RELATIVE_ERROR: f64 = 0.045;

/// Observations of one kind of run, in seconds.
#[derive(Debug, Clone, Default)]
struct Distribution {
    count: u64,
    sum: f64,
    least: f64,
    greatest: f64,
    histogram: MergedHistogram,
}

impl Distribution {
    fn observe(&mut self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        if self.count == 0 || seconds < self.least {
            self.least = seconds;
        }
        if self.count == 0 || seconds > self.greatest {
            self.greatest = seconds;
        }
        self.count += 1;
        self.sum += seconds;
        self.histogram.observe(seconds);
    }

    fn merge(&mut self, other: &Distribution) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.least < self.least {
            self.least = other.least;
        }
        if self.count == 0 || other.greatest > self.greatest {
            self.greatest = other.greatest;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.histogram.merge(&other.histogram);
    }

    /// The `q`-quantile, kept within the values seen.
    fn quantile(&self, q: f64) -> Option<f64> {
        self.histogram
            .quantile(q)
            .map(|v| v.clamp(self.least, self.greatest))
    }

    fn times(&self) -> Times {
        Times {
            mean: (self.count > 0).then(|| self.sum / self.count as f64),
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            min: (self.count > 0).then_some(self.least),
            max: (self.count > 0).then_some(self.greatest),
            total: self.sum,
        }
    }
}

/// A distribution's figures, in seconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Times {
    /// Exact mean.
    pub mean: Option<f64>,
    /// Median, within [`RELATIVE_ERROR`].
    pub p50: Option<f64>,
    /// 99th percentile, within [`RELATIVE_ERROR`].
    pub p99: Option<f64>,
    /// Exact least value.
    pub min: Option<f64>,
    /// Exact greatest value.
    pub max: Option<f64>,
    /// Exact sum of all values.
    pub total: f64,
}

/// One step of one pipeline.
#[derive(Debug, Default)]
struct StepEntry {
    step: String,
    plugin: String,
    action: String,
    failed: u64,
    time: Distribution,
}

/// One pipeline's attempts.
#[derive(Debug, Default)]
struct PipelineEntry {
    completed: u64,
    failed: u64,
    time: Distribution,
    steps: Vec<StepEntry>,
}

/// Every pipeline's figures since start.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pipelines: Mutex<HashMap<String, PipelineEntry>>,
}

/// A pipeline's row.
#[derive(Debug, Serialize)]
pub struct PipelineRow {
    /// Pipeline id.
    pub pipeline: String,
    /// Attempts that completed.
    pub completed: u64,
    /// Attempts that failed (retried or for good).
    pub failed: u64,
    /// Attempt time: the sum of its steps' times.
    #[serde(flatten)]
    pub time: Times,
}

/// A step's row, over every pipeline with a step of that name and action.
#[derive(Debug, Serialize)]
pub struct StepRow {
    /// Step name.
    pub step: String,
    /// Plugin.
    pub plugin: String,
    /// Action.
    pub action: String,
    /// Runs.
    pub runs: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Its time.
    #[serde(flatten)]
    pub time: Times,
}

/// Everything the Pipelines page shows of run times.
#[derive(Debug, Serialize)]
pub struct PipelinesView {
    /// Per pipeline, most attempts first.
    pub pipelines: Vec<PipelineRow>,
    /// Per step name and plugin action, most time first.
    pub steps: Vec<StepRow>,
    /// Per plugin action (`step` empty), most runs first.
    pub plugins: Vec<StepRow>,
    /// How far a quantile may be from the exact value, relatively.
    pub relative_error: f64,
}

/// A step record as workers report it: `{name, plugin, action, status, duration_ms}`.
struct StepRecord<'a> {
    name: &'a str,
    plugin: &'a str,
    action: &'a str,
    failed: bool,
    seconds: f64,
}

impl StepRecord<'_> {
    /// The record of a step that ran (completed or failed), or `None`.
    fn of(step: &serde_json::Value) -> Option<StepRecord<'_>> {
        let text = |key| step.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let failed = match text("status") {
            "completed" => false,
            "failed" => true,
            _ => return None,
        };
        let ms = step
            .get("duration_ms")
            .and_then(|v| v.as_f64())
            .unwrap_or_default();
        Some(StepRecord {
            name: text("name"),
            plugin: text("plugin"),
            action: text("action"),
            failed,
            seconds: ms / 1000.0,
        })
    }
}

impl PipelineStats {
    /// Records one attempt of `pipeline` from its step records; the
    /// attempt's time is the sum of the times of the steps that ran.
    pub fn record(&self, pipeline: &str, completed: bool, steps: &[serde_json::Value]) {
        let mut pipelines = self.pipelines.lock();
        let entry = match pipelines.get_mut(pipeline) {
            Some(entry) => entry,
            None => pipelines.entry(pipeline.to_string()).or_default(),
        };
        let mut total = 0.0;
        for record in steps.iter().filter_map(StepRecord::of) {
            total += record.seconds;
            let index = entry.steps.iter().position(|s| {
                s.step == record.name && s.plugin == record.plugin && s.action == record.action
            });
            let step = match index {
                Some(i) => &mut entry.steps[i],
                None => {
                    entry.steps.push(StepEntry {
                        step: record.name.to_string(),
                        plugin: record.plugin.to_string(),
                        action: record.action.to_string(),
                        ..StepEntry::default()
                    });
                    let last = entry.steps.len() - 1;
                    &mut entry.steps[last]
                }
            };
            step.time.observe(record.seconds);
            step.failed += u64::from(record.failed);
        }
        if completed {
            entry.completed += 1;
        } else {
            entry.failed += 1;
        }
        entry.time.observe(total);
    }

    /// The figures now.
    pub fn view(&self) -> PipelinesView {
        let pipelines = self.pipelines.lock();
        let mut rows = Vec::with_capacity(pipelines.len());
        let mut steps: Vec<(String, String, String, u64, Distribution)> = Vec::new();
        let mut plugins: Vec<(String, String, String, u64, Distribution)> = Vec::new();
        for (id, entry) in pipelines.iter() {
            rows.push(PipelineRow {
                pipeline: id.clone(),
                completed: entry.completed,
                failed: entry.failed,
                time: entry.time.times(),
            });
            for s in &entry.steps {
                add_to(&mut steps, &s.step, s);
                add_to(&mut plugins, "", s);
            }
        }
        drop(pipelines);
        rows.sort_by(|a, b| {
            (b.completed + b.failed)
                .cmp(&(a.completed + a.failed))
                .then_with(|| a.pipeline.cmp(&b.pipeline))
        });
        let to_rows = |groups: Vec<(String, String, String, u64, Distribution)>| {
            groups
                .into_iter()
                .map(|(step, plugin, action, failed, time)| StepRow {
                    step,
                    plugin,
                    action,
                    runs: time.count,
                    failed,
                    time: time.times(),
                })
                .collect::<Vec<_>>()
        };
        let mut steps = to_rows(steps);
        steps.sort_by(|a, b| b.time.total.total_cmp(&a.time.total));
        let mut plugins = to_rows(plugins);
        plugins.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.plugin.cmp(&b.plugin)));
        PipelinesView {
            pipelines: rows,
            steps,
            plugins,
            relative_error: RELATIVE_ERROR,
        }
    }
}

/// Adds a step's figures to the group named `(step, plugin, action)`.
fn add_to(
    groups: &mut Vec<(String, String, String, u64, Distribution)>,
    step: &str,
    s: &StepEntry,
) {
    let found = groups
        .iter_mut()
        .find(|g| g.0 == step && g.1 == s.plugin && g.2 == s.action);
    match found {
        Some(group) => {
            group.3 += s.failed;
            group.4.merge(&s.time);
        }
        None => groups.push((
            step.to_string(),
            s.plugin.clone(),
            s.action.clone(),
            s.failed,
            s.time.clone(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(name: &str, action: &str, status: &str, ms: f64) -> serde_json::Value {
        json!({"name": name, "plugin": "core", "action": action, "status": status, "duration_ms": ms})
    }

    #[test]
    fn runs_of_one_length_read_as_exactly_that_length() {
        let stats = PipelineStats::default();
        for _ in 0..20 {
            stats.record("p", true, &[step("nap", "sleep", "completed", 51.0)]);
        }
        stats.record("slow", true, &[step("nap", "sleep", "completed", 30_000.0)]);
        let view = stats.view();
        let p = &view.pipelines[0];
        assert_eq!((p.pipeline.as_str(), p.completed), ("p", 20));
        for figure in [p.time.p50, p.time.p99, p.time.min, p.time.max] {
            assert_eq!(figure, Some(0.051));
        }
        assert!(p.time.mean.is_some_and(|m| (m - 0.051).abs() < 1e-12));
        assert_eq!(view.pipelines[1].time.p50, Some(30.0));
        // One step row for both pipelines' `nap`, and one plugin row.
        assert_eq!(view.steps.len(), 1);
        assert_eq!(view.steps[0].runs, 21);
        assert_eq!(view.plugins[0].step, "");
    }

    #[test]
    fn quantiles_are_within_the_stated_error_and_the_mean_is_exact() {
        let stats = PipelineStats::default();
        // 1..=100 ms: p50 50 ms, p99 99 ms, mean 50.5 ms.
        for ms in 1..=100 {
            stats.record(
                "p",
                ms % 10 != 0,
                &[
                    step("a", "sleep", "completed", f64::from(ms)),
                    step(
                        "b",
                        "fail",
                        if ms % 10 == 0 { "failed" } else { "skipped" },
                        0.0116,
                    ),
                ],
            );
        }
        let view = stats.view();
        let a = view.steps.iter().find(|s| s.step == "a").unwrap();
        let near = |got: Option<f64>, want: f64| {
            got.is_some_and(|g| (g / want - 1.0).abs() <= RELATIVE_ERROR)
        };
        assert!(near(a.time.p50, 0.050), "{:?}", a.time);
        assert!(near(a.time.p99, 0.099), "{:?}", a.time);
        assert!(a.time.mean.is_some_and(|m| (m - 0.0505).abs() < 1e-12));
        // The failing step ran 10 times, each 11.6 µs: every figure says so.
        let b = view.steps.iter().find(|s| s.step == "b").unwrap();
        assert_eq!((b.runs, b.failed), (10, 10));
        assert!(b.time.p50.is_some_and(|v| (v - 0.000_011_6).abs() < 1e-15));
        let p = &view.pipelines[0];
        assert_eq!((p.completed, p.failed), (90, 10));
    }

    #[test]
    fn steps_that_did_not_run_and_odd_records_are_left_out() {
        let stats = PipelineStats::default();
        stats.record(
            "p",
            false,
            &[
                step("a", "sleep", "skipped", 5.0),
                json!({"status": "completed", "duration_ms": "soon"}),
                json!(7),
            ],
        );
        let view = stats.view();
        assert_eq!(view.steps.len(), 1);
        assert_eq!(view.steps[0].time.mean, Some(0.0));
        assert_eq!(view.pipelines[0].failed, 1);
    }
}
