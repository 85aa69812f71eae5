//! Series taken out of their families once, for code that records every task.
//!
//! A family lookup hashes the labels (and, for text labels, builds owned
//! strings to look them up with) and takes the family's lock. The task event
//! recorder would pay that seven times per task; a series handle shares the
//! family's own counter or histogram, so it is looked up once and kept.

use crate::metrics::{
    ActionLabels, Metrics, PipelineLabel, PipelineStatusLabels, StatusTypeLabels, StepLabels,
    TraceExemplar, TypeLabel,
};
use mimir_core::WorkTaskType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::histogram::Histogram;

/// One task type's series.
#[derive(Debug, Clone)]
pub struct TaskSeries {
    /// `mimir_tasks_total{status="completed"}`.
    pub completed: Counter,
    /// `mimir_tasks_total{status="failed"}`.
    pub failed: Counter,
    /// `mimir_tasks_total{status="timeout"}`.
    pub timeout: Counter,
    /// `mimir_tasks_total{status="cancelled"}`.
    pub cancelled: Counter,
    /// `mimir_task_retries_total`.
    pub retries: Counter,
    /// `mimir_lease_expiries_total`.
    pub lease_expiries: Counter,
    /// `mimir_queue_wait_time_seconds`.
    pub queue_wait: HistogramWithExemplars<TraceExemplar>,
    /// `mimir_task_duration_seconds`.
    pub duration: HistogramWithExemplars<TraceExemplar>,
    /// `mimir_task_start_latency_seconds`.
    pub start_latency: HistogramWithExemplars<TraceExemplar>,
}

impl TaskSeries {
    /// The series of `task_type`, created in `metrics` (at zero) if new.
    pub fn new(metrics: &Metrics, task_type: WorkTaskType) -> TaskSeries {
        let r#type = task_type.as_str();
        let status = |status| {
            metrics
                .tasks
                .get_or_create(&StatusTypeLabels { status, r#type })
                .clone()
        };
        let label = TypeLabel { r#type };
        TaskSeries {
            completed: status("completed"),
            failed: status("failed"),
            timeout: status("timeout"),
            cancelled: status("cancelled"),
            retries: metrics.task_retries.get_or_create(&label).clone(),
            lease_expiries: metrics.lease_expiries.get_or_create(&label).clone(),
            queue_wait: metrics.queue_wait_time.get_or_create(&label).clone(),
            duration: metrics.task_duration.get_or_create(&label).clone(),
            start_latency: metrics.task_start_latency.get_or_create(&label).clone(),
        }
    }

    /// The `mimir_tasks_total` series of a final status, if it is one.
    pub fn finished(&self, status: &str) -> Option<&Counter> {
        match status {
            "completed" => Some(&self.completed),
            "failed" => Some(&self.failed),
            "timeout" => Some(&self.timeout),
            "cancelled" => Some(&self.cancelled),
            _ => None,
        }
    }
}

/// One pipeline's series, and those of the steps seen in its executions.
#[derive(Debug)]
pub struct PipelineSeries {
    pipeline: String,
    completed: Option<Counter>,
    failed: Option<Counter>,
    duration: Histogram,
    steps: Vec<StepSeries>,
}

#[derive(Debug)]
struct StepSeries {
    step: String,
    plugin: String,
    action: String,
    duration: Histogram,
}

impl PipelineSeries {
    /// The series of `pipeline`.
    pub fn new(metrics: &Metrics, pipeline: &str) -> PipelineSeries {
        let label = PipelineLabel {
            pipeline: pipeline.to_string(),
        };
        PipelineSeries {
            duration: metrics.pipeline_duration.get_or_create(&label).clone(),
            pipeline: label.pipeline,
            completed: None,
            failed: None,
            steps: Vec::new(),
        }
    }

    /// Records a finished execution from its step records
    /// (`[{name, plugin, action, status, duration_ms}]`, as workers report
    /// them): step times, plugin errors, the execution's time (its steps) and
    /// outcome.
    pub fn record(&mut self, metrics: &Metrics, completed: bool, steps: &[serde_json::Value]) {
        let mut total_ms = 0.0;
        for step in steps {
            let StepFields {
                name,
                plugin,
                action,
                status,
                ms,
            } = StepFields::of(step);
            if status != "completed" && status != "failed" {
                continue;
            }
            total_ms += ms;
            if status == "failed" {
                metrics
                    .plugin_errors
                    .get_or_create(&ActionLabels {
                        plugin: plugin.to_string(),
                        action: action.to_string(),
                    })
                    .inc();
            }
            let known = self
                .steps
                .iter()
                .find(|s| s.step == name && s.plugin == plugin && s.action == action);
            match known {
                Some(series) => series.duration.observe(ms / 1000.0),
                None => {
                    let labels = StepLabels {
                        step: name.to_string(),
                        plugin: plugin.to_string(),
                        action: action.to_string(),
                    };
                    let duration = metrics.step_duration.get_or_create(&labels).clone();
                    duration.observe(ms / 1000.0);
                    self.steps.push(StepSeries {
                        step: labels.step,
                        plugin: labels.plugin,
                        action: labels.action,
                        duration,
                    });
                }
            }
        }
        let (slot, status) = if completed {
            (&mut self.completed, "completed")
        } else {
            (&mut self.failed, "failed")
        };
        slot.get_or_insert_with(|| {
            metrics
                .pipeline_executions
                .get_or_create(&PipelineStatusLabels {
                    pipeline: self.pipeline.clone(),
                    status,
                })
                .clone()
        })
        .inc();
        self.duration.observe(total_ms / 1000.0);
    }
}

/// The fields of one step record; absent ones are empty (or 0).
#[derive(Default)]
struct StepFields<'a> {
    name: &'a str,
    plugin: &'a str,
    action: &'a str,
    status: &'a str,
    ms: f64,
}

impl StepFields<'_> {
    /// Read in one pass over the record, rather than one map search per field.
    fn of(step: &serde_json::Value) -> StepFields<'_> {
        let mut fields = StepFields::default();
        for (key, value) in step.as_object().into_iter().flatten() {
            let text = || value.as_str().unwrap_or_default();
            match key.as_str() {
                "name" => fields.name = text(),
                "plugin" => fields.plugin = text(),
                "action" => fields.action = text(),
                "status" => fields.status = text(),
                "duration_ms" => fields.ms = value.as_f64().unwrap_or_default(),
                _ => {}
            }
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exposition(metrics: &Metrics) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, metrics.registry())
            .expect("encoding into a String cannot fail");
        text
    }

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn task_series_are_the_families_own() {
        let metrics = Metrics::new();
        for (n, t) in WorkTaskType::ALL.into_iter().enumerate() {
            let series = TaskSeries::new(&metrics, t);
            for _ in 0..=n {
                series.finished("timeout").expect("a final status").inc();
            }
            series.duration.observe(0.5, None, None);
        }
        let text = exposition(&metrics);
        for (n, t) in WorkTaskType::ALL.into_iter().enumerate() {
            let t = t.as_str();
            let total = format!(
                "mimir_tasks_total{{status=\"timeout\",type=\"{t}\"}} {}",
                n + 1
            );
            assert!(has(&text, &total), "{total}\n{text}");
            let count = format!("mimir_task_duration_seconds_count{{type=\"{t}\"}} 1");
            assert!(has(&text, &count), "{count}");
        }
        assert!(
            TaskSeries::new(&metrics, WorkTaskType::MlTraining)
                .finished("queued")
                .is_none()
        );
    }

    #[test]
    fn kept_pipeline_series_count_like_fresh_lookups() {
        let metrics = Metrics::new();
        let step = |name: &str, status: &str, ms: f64| json!({"name": name, "plugin": "core", "action": "log", "status": status, "duration_ms": ms});
        let mut kept = PipelineSeries::new(&metrics, "p1");
        kept.record(
            &metrics,
            true,
            &[step("a", "completed", 10.0), step("b", "completed", 20.0)],
        );
        kept.record(
            &metrics,
            false,
            &[step("a", "completed", 10.0), step("b", "failed", 5.0)],
        );
        // Skipped steps do not count; a new step of a known pipeline does.
        kept.record(
            &metrics,
            false,
            &[step("a", "failed", 1.0), step("b", "skipped", 0.0)],
        );
        kept.record(&metrics, true, &[step("c", "completed", 1.0)]);
        metrics.record_pipeline("p1", true, &[step("a", "completed", 1.0)]);
        let text = exposition(&metrics);
        for line in [
            "mimir_pipeline_executions_total{pipeline=\"p1\",status=\"completed\"} 3",
            "mimir_pipeline_executions_total{pipeline=\"p1\",status=\"failed\"} 2",
            "mimir_pipeline_execution_duration_seconds_count{pipeline=\"p1\"} 5",
            // 10 + 20, 10 + 5, 1, 1 and 1 ms.
            "mimir_pipeline_execution_duration_seconds_sum{pipeline=\"p1\"} 0.048",
            "mimir_pipeline_step_duration_seconds_count{step=\"a\",plugin=\"core\",action=\"log\"} 4",
            "mimir_pipeline_step_duration_seconds_count{step=\"b\",plugin=\"core\",action=\"log\"} 2",
            "mimir_pipeline_step_duration_seconds_count{step=\"c\",plugin=\"core\",action=\"log\"} 1",
            "mimir_plugin_errors_total{plugin=\"core\",action=\"log\"} 2",
        ] {
            assert!(has(&text, line), "{line}\n{text}");
        }
    }
}
