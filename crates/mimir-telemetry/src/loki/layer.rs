//! The `tracing` layer: turns each event into an [`Entry`] and queues it for
//! the sink without blocking.

use super::{DROPPED_QUEUE_FULL, Entry, METADATA_FIELDS};
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Targets never sent to Loki: the sink's own reports and the HTTP stack it
/// pushes with, whose debug lines would otherwise feed the sink back.
const OWN_TARGETS: [&str; 5] = ["mimir::loki", "hyper", "reqwest", "h2", "rustls"];

/// Queues every event it sees for the Loki sink. Filter it like any layer.
#[derive(Debug, Clone)]
pub struct LokiLayer {
    queue: SyncSender<Entry>,
}

impl LokiLayer {
    pub(super) fn new(queue: SyncSender<Entry>) -> LokiLayer {
        LokiLayer { queue }
    }

    /// Queues a JSON log line another process wrote in our format (an
    /// executor's), as if logged here. Other lines are ignored.
    pub fn forward(&self, json_line: &str) {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(json_line) else {
            return;
        };
        // The entry is stamped on arrival, a few milliseconds late at most.
        fields.remove("timestamp");
        let level = match fields.get("level").and_then(Value::as_str) {
            Some("ERROR") => tracing::Level::ERROR,
            Some("WARN") => tracing::Level::WARN,
            Some("INFO") => tracing::Level::INFO,
            Some("DEBUG") => tracing::Level::DEBUG,
            Some("TRACE") => tracing::Level::TRACE,
            _ => return,
        };
        self.queue_entry(level, fields);
    }

    fn queue_entry(&self, level: tracing::Level, mut fields: Map<String, Value>) {
        let timestamp_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or_default();
        let mut metadata = Vec::new();
        for key in METADATA_FIELDS {
            let Some(value) = fields.remove(key) else {
                continue;
            };
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !value.is_empty() {
                metadata.push((key, value));
            }
        }
        let entry = Entry {
            timestamp_ns,
            level,
            line: Value::Object(fields).to_string(),
            metadata,
        };
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED_QUEUE_FULL.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The fields of a span, kept so that events inside it carry them.
struct SpanFields(Map<String, Value>);

/// Collects fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
}

impl<S> Layer<S> for LokiLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Map::new();
        attrs.record(&mut Fields(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if OWN_TARGETS.iter().any(|t| meta.target().starts_with(t)) {
            return;
        }
        let mut fields = Map::new();
        fields.insert("level".into(), Value::from(meta.level().as_str()));
        fields.insert("target".into(), Value::from(meta.target()));
        event.record(&mut Fields(&mut fields));
        // Fields of the enclosing spans, innermost first, unless the event
        // has its own.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    for (key, value) in span_fields {
                        if !fields.contains_key(key) {
                            fields.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
        }
        self.queue_entry(*meta.level(), fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_json_lines_with_correlation_ids_as_metadata() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(16);
        let subscriber = tracing_subscriber::registry().with(LokiLayer::new(sender));
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("attempt", worktask_id = "t-1", attempt = 2, trace_id = "");
            let _entered = span.enter();
            tracing::warn!(target: "mimir::task", event = "retried", pipeline_id = "p-9", "task retried");
            tracing::info!(target: "mimir::loki", "never sent");
            tracing::debug!(target: "hyper::client", "never sent");
        });
        let entries: Vec<Entry> = receiver.try_iter().collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = &entries[0];
        assert_eq!(entry.level, tracing::Level::WARN);
        assert_eq!(
            entry.metadata,
            vec![
                ("worktask_id", "t-1".to_string()),
                ("pipeline_id", "p-9".to_string())
            ],
            "empty values are left out"
        );
        let line: Value = serde_json::from_str(&entry.line).expect("JSON line");
        assert_eq!(
            line,
            serde_json::json!({"level": "WARN", "target": "mimir::task", "message": "task retried", "event": "retried", "attempt": 2})
        );
        assert!(entry.timestamp_ns > 1_600_000_000_000_000_000);
    }

    #[test]
    fn forwarded_lines_keep_their_fields_and_correlation_ids() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(16);
        let layer = LokiLayer::new(sender);
        layer.forward(r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","message":"hello from a step","worktask_id":"t-1","step":"say","target":"mimir_pipeline::log"}"#);
        layer.forward("not json");
        layer.forward(r#"{"message":"no level"}"#);
        let entries: Vec<Entry> = receiver.try_iter().collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].level, tracing::Level::INFO);
        assert_eq!(
            entries[0].metadata,
            vec![("worktask_id", "t-1".to_string())]
        );
        let line: Value = serde_json::from_str(&entries[0].line).expect("JSON line");
        assert_eq!(
            line,
            serde_json::json!({"level": "INFO", "message": "hello from a step", "step": "say", "target": "mimir_pipeline::log"})
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        let subscriber = tracing_subscriber::registry().with(LokiLayer::new(sender));
        let before = super::super::dropped().0;
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!(i, "line");
            }
        });
        assert_eq!(receiver.try_iter().count(), 2);
        assert!(super::super::dropped().0 >= before + 3);
    }
}
