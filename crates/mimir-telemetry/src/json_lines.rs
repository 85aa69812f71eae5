//! The `--log-format json` formatter: one flat JSON object per event.
//!
//! ```text
//! {"timestamp":"2026-11-21T21:55:33.103860Z","level":"INFO","message":"task started",
//!  "worktask_id":"…","attempt":1,…,"target":"mimir::task"}
//! ```
//!
//! The event's fields come first, then those of its enclosing spans, innermost
//! first; a name already written is not written again, so the event's own
//! value wins and no key repeats. Every line about a task therefore carries
//! its correlation fields at the top level, whether the event names them or a
//! span does.
//!
//! Why not `tracing-subscriber`'s JSON formatter: at info the orchestrator
//! writes two lines per task, tens of thousands a second, and that formatter
//! costs ~1.2 µs a line (it serialises through `fmt::Write`, re-checking UTF-8
//! on every small write, and formats the whole timestamp each time). This one
//! writes bytes straight into a reused buffer, encodes each call site's field
//! names once, escapes only text that needs it (with `serde_json`), and
//! formats the date and time once per second (`cargo bench -p mimir-telemetry`
//! measures both).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Writes each event it sees as one JSON line to its writer.
#[derive(Debug, Clone)]
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// A formatter writing to `make_writer` (one `write_all` per line).
    pub fn new(make_writer: W) -> JsonLines<W> {
        JsonLines { make_writer }
    }
}

/// A span's fields, each encoded as a JSON value once, when recorded.
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Vec<u8>)>);

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        string(self.slot(field), value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        integer(self.slot(field), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        integer(self.slot(field), value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        float(self.slot(field), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        boolean(self.slot(field), value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        debug(self.slot(field), value);
    }
}

impl SpanFields {
    /// The emptied value of `field`, added if new (a later record replaces).
    fn slot(&mut self, field: &Field) -> &mut Vec<u8> {
        let index = match self.0.iter().position(|(name, _)| *name == field.name()) {
            Some(index) => index,
            None => {
                self.0.push((field.name(), Vec::new()));
                self.0.len() - 1
            }
        };
        let value = &mut self.0[index].1;
        value.clear();
        value
    }
}

/// A call site's keys: for each of its fields, by index, `,"name":` as JSON,
/// or `None` for a field left out (the `log.*` fields of a record from the
/// `log` crate, whose metadata the line already shows). Worked out on a call
/// site's first line, as the names never change: a key is then one copy.
type Keys = Box<[Option<Box<[u8]>>]>;

/// The keys of each call site a thread has logged from.
type KeyCache = HashMap<Identifier, Keys, foldhash::fast::RandomState>;

fn call_site_keys(event: &Event<'_>, from_log: bool) -> Keys {
    event
        .fields()
        .map(|field| {
            if from_log && field.name().starts_with("log.") {
                return None;
            }
            let mut key = vec![b','];
            string(&mut key, field.name());
            key.push(b':');
            Some(key.into_boxed_slice())
        })
        .collect()
}

/// Writes an event's visited fields as `,"name":value` into a line, and
/// notes which it wrote (by their index in the event's field set).
struct Encoder<'a> {
    line: &'a mut Vec<u8>,
    keys: &'a Keys,
    written: u64,
}

impl Encoder<'_> {
    /// Writes `,"name":` and returns the line for the value; `None` for a
    /// field left out.
    fn key(&mut self, field: &Field) -> Option<&mut Vec<u8>> {
        let key = self.keys.get(field.index())?.as_deref()?;
        // A call site has at most 32 fields.
        self.written |= 1 << (field.index() % 64);
        self.line.extend_from_slice(key);
        Some(self.line)
    }
}

/// Whether the event's field `name` is among those an [`Encoder`] wrote.
fn event_wrote(event: &Event<'_>, written: u64, name: &str) -> bool {
    event
        .fields()
        .find(|field| field.name() == name)
        .is_some_and(|field| written & (1 << (field.index() % 64)) != 0)
}

impl Visit for Encoder<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(out) = self.key(field) {
            string(out, value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Some(out) = self.key(field) {
            integer(out, value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(out) = self.key(field) {
            integer(out, value);
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if let Some(out) = self.key(field) {
            float(out, value);
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some(out) = self.key(field) {
            boolean(out, value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if let Some(out) = self.key(field) {
            debug(out, value);
        }
    }
}

/// `value` as a JSON string. Most text (every field name, ids, messages)
/// needs no escaping and is copied whole; the rest goes through `serde_json`.
fn string(out: &mut Vec<u8>, value: &str) {
    if needs_escape(value.as_bytes()) {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    } else {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` hold a `"`, a `\\` or a control character, the bytes a
/// JSON string must escape.
///
/// A line is mostly short names and ids, so the text is tested eight bytes
/// at a time, each word with a few arithmetic instructions and no branch;
/// the last word overlaps the one before it rather than being copied out and
/// padded. Only a text shorter than a word is looked at byte by byte.
fn needs_escape(bytes: &[u8]) -> bool {
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    };
    let (words, _) = bytes.as_chunks::<8>();
    let found = words.iter().fold(special_bytes(last), |found, word| {
        found | special_bytes(word)
    });
    found != 0
}

/// Nonzero when any of eight bytes is below `0x20`, `"` or `\\`: the classic
/// tests for a byte below `n` and for a zero byte (after XOR with the byte
/// sought), which are exact about whether there is any.
fn special_bytes(word: &[u8; 8]) -> u64 {
    const fn each(byte: u8) -> u64 {
        u64::from_le_bytes([byte; 8])
    }
    let below = |word: u64, n: u8| word.wrapping_sub(each(n)) & !word & each(0x80);
    let word = u64::from_le_bytes(*word);
    below(word, 0x20) | below(word ^ each(b'"'), 1) | below(word ^ each(b'\\'), 1)
}

/// An integer, without going through `fmt`.
fn integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// A float, in its shortest form that reads back the same; JSON has no NaN
/// or infinity, so those are `null`.
fn float(out: &mut Vec<u8>, value: f64) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &value);
}

/// A `Debug` (or `%` `Display`) value, as a JSON string.
fn debug(out: &mut Vec<u8>, value: &dyn std::fmt::Debug) {
    TEXT.with(|text| match text.try_borrow_mut() {
        Ok(mut text) => {
            text.clear();
            let _ = write!(text, "{value:?}");
            string(out, &text);
        }
        // Only when a Debug impl logs while being formatted.
        Err(_) => string(out, &format!("{value:?}")),
    });
}

/// A thread's reused buffers.
#[derive(Default)]
struct Buffers {
    line: Vec<u8>,
    /// The names of span fields written to the line.
    names: Vec<&'static str>,
    keys: KeyCache,
    clock: Clock,
}

thread_local! {
    static LINE: RefCell<Buffers> = RefCell::new(Buffers::default());
    /// Scratch text for `Debug`/`Display` values.
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The second a thread last formatted, and its `YYYY-MM-DDTHH:MM:SS`: the
/// date and time are worked out once a second, not once a line.
struct Clock {
    second: u64,
    text: [u8; 19],
}

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            second: u64::MAX,
            text: *b"1970-01-01T00:00:00",
        }
    }
}

impl Clock {
    /// Appends `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` for `now` (UTC, microseconds).
    fn write(&mut self, line: &mut Vec<u8>, now: SystemTime) {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs();
        if self.second != secs {
            let formatted = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            // Past the year 9999 the text is longer: keep the last second.
            if let Ok(text) = <[u8; 19]>::try_from(formatted.as_bytes()) {
                *self = Clock { second: secs, text };
            }
        }
        let mut digits = *b".000000Z\"";
        let mut rest = since_epoch.subsec_micros();
        for digit in digits[1..7].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        line.push(b'"');
        line.extend_from_slice(&self.text);
        line.extend_from_slice(&digits);
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(fields) => values.record(fields),
            None => {
                let mut fields = SpanFields::default();
                values.record(&mut fields);
                extensions.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        LINE.with(|buffers| {
            let mut owned = None;
            let mut borrowed = buffers.try_borrow_mut();
            // A nested event (a writer that logs) gets buffers of its own.
            let Buffers {
                line,
                names,
                keys,
                clock,
            } = match borrowed.as_deref_mut() {
                Ok(buffers) => buffers,
                Err(_) => owned.insert(Buffers::default()),
            };
            line.clear();
            names.clear();
            encode(line, names, keys, clock, event, &ctx);
            let _ = self
                .make_writer
                .make_writer_for(event.metadata())
                .write_all(line);
            // Keep the buffer warm, but not one huge line's worth forever.
            if line.capacity() > 64 * 1024 {
                *line = Vec::new();
            }
        });
    }
}

/// One whole line for `event`, newline included.
fn encode<S>(
    line: &mut Vec<u8>,
    names: &mut Vec<&'static str>,
    keys: &mut KeyCache,
    clock: &mut Clock,
    event: &Event<'_>,
    ctx: &Context<'_, S>,
) where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // A record from the `log` crate, with its own target and level.
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    line.extend_from_slice(b"{\"timestamp\":");
    clock.write(line, SystemTime::now());
    line.extend_from_slice(b",\"level\":\"");
    line.extend_from_slice(meta.level().as_str().as_bytes());
    line.push(b'"');
    let keys = keys
        .entry(event.metadata().callsite())
        .or_insert_with(|| call_site_keys(event, normalized.is_some()));
    let mut encoder = Encoder {
        line,
        keys,
        written: 0,
    };
    event.record(&mut encoder);
    let written = encoder.written;
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope {
            let extensions = span.extensions();
            let Some(SpanFields(fields)) = extensions.get::<SpanFields>() else {
                continue;
            };
            for (name, value) in fields {
                if names.contains(name) || event_wrote(event, written, name) {
                    continue;
                }
                names.push(name);
                line.push(b',');
                string(line, name);
                line.push(b':');
                line.extend_from_slice(value);
            }
        }
    }
    line.extend_from_slice(b",\"target\":");
    string(line, meta.target());
    line.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects written lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// The lines `work` logs, parsed; each must be one whole JSON object
    /// that starts with its timestamp.
    fn logged(work: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(lines.clone()));
        tracing::subscriber::with_default(subscriber, work);
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'), "{text}");
        assert!(
            text.lines().all(|l| l.starts_with("{\"timestamp\":\"")),
            "{text}"
        );
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    fn without_timestamp(mut line: Value) -> Value {
        line.as_object_mut().expect("object").remove("timestamp");
        line
    }

    #[test]
    fn an_event_is_one_flat_object_with_typed_values() {
        let lines = logged(|| {
            let id = std::net::Ipv4Addr::LOCALHOST;
            tracing::warn!(
                target: "mimir::task",
                worktask_id = %id,
                r#type = "pipeline_execution",
                attempt = 2u32,
                delta = -3i64,
                duration_s = 0.25,
                nan = f64::NAN,
                retried = true,
                reason = ?Some("flaky"),
                "task {} retried", "x"
            );
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(
            without_timestamp(lines[0].clone()),
            json!({
                "level": "WARN",
                "message": "task x retried",
                "worktask_id": "127.0.0.1",
                "type": "pipeline_execution",
                "attempt": 2,
                "delta": -3,
                "duration_s": 0.25,
                "nan": null,
                "retried": true,
                "reason": "Some(\"flaky\")",
                "target": "mimir::task"
            })
        );
    }

    #[test]
    fn span_fields_are_flattened_innermost_first_and_never_repeated() {
        let lines = logged(|| {
            let outer =
                tracing::info_span!("attempt", worktask_id = "t-1", attempt = 1, step = "outer");
            let _outer = outer.enter();
            let inner =
                tracing::info_span!("pipeline_step", step = "read", late = tracing::field::Empty);
            let _inner = inner.enter();
            inner.record("late", 7);
            inner.record("step", "read-2");
            // A field the event names but leaves empty is the span's.
            tracing::info!(attempt = 3, worktask_id = None::<&str>, "step done");
        });
        let line = without_timestamp(lines[0].clone());
        assert_eq!(
            line,
            json!({
                "level": "INFO",
                "message": "step done",
                "attempt": 3,
                "step": "read-2",
                "late": 7,
                "worktask_id": "t-1",
                "target": "mimir_telemetry::json_lines::tests"
            })
        );
        let raw = serde_json::to_string(&lines[0]).expect("JSON");
        assert_eq!(raw.matches("\"attempt\"").count(), 1);
    }

    #[test]
    fn each_call_site_writes_its_own_field_names() {
        let lines = logged(|| {
            for n in 0..2 {
                tracing::info!(first = n, "one");
                tracing::info!(second = n, "two");
            }
        });
        let fields: Vec<Value> = lines.into_iter().map(without_timestamp).collect();
        let target = "mimir_telemetry::json_lines::tests";
        assert_eq!(
            fields,
            [
                json!({"level": "INFO", "message": "one", "first": 0, "target": target}),
                json!({"level": "INFO", "message": "two", "second": 0, "target": target}),
                json!({"level": "INFO", "message": "one", "first": 1, "target": target}),
                json!({"level": "INFO", "message": "two", "second": 1, "target": target}),
            ]
        );
    }

    #[test]
    fn a_log_crate_record_keeps_its_own_target_and_level() {
        let record = log::Record::builder()
            .target("r2d2")
            .level(log::Level::Warn)
            .args(format_args!("pool is slow"))
            .module_path(Some("r2d2::pool"))
            .file(Some("pool.rs"))
            .line(Some(7))
            .build();
        let lines = logged(|| tracing_log::format_trace(&record).expect("traced"));
        assert_eq!(
            without_timestamp(lines[0].clone()),
            json!({"level": "WARN", "message": "pool is slow", "target": "r2d2"})
        );
    }

    #[test]
    fn the_timestamp_is_rfc3339_utc_with_microseconds() {
        let mut clock = Clock::default();
        let mut at = |secs: u64, micros: u64| {
            let mut line = Vec::new();
            clock.write(
                &mut line,
                UNIX_EPOCH + std::time::Duration::from_micros(secs * 1_000_000 + micros),
            );
            String::from_utf8(line).expect("UTF-8")
        };
        assert_eq!(at(0, 7), "\"1970-01-01T00:00:00.000007Z\"");
        assert_eq!(
            at(1_795_298_133, 103_860),
            "\"2026-11-21T21:55:33.103860Z\""
        );
        // The cached second is replaced when the second changes, either way.
        assert_eq!(
            at(1_795_298_134, 999_999),
            "\"2026-11-21T21:55:34.999999Z\""
        );
        assert_eq!(at(1_795_298_133, 0), "\"2026-11-21T21:55:33.000000Z\"");
        let now = logged(|| tracing::info!("now"));
        let stamp = now[0]["timestamp"].as_str().expect("timestamp");
        let parsed = chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
        let age = chrono::Utc::now() - parsed.with_timezone(&chrono::Utc);
        assert!(age.num_seconds().abs() < 5, "{stamp}");
    }

    #[test]
    fn a_field_whose_debug_output_logs_is_written_whole() {
        struct Chatty;
        impl std::fmt::Debug for Chatty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                tracing::info!("from inside a Debug impl");
                f.write_str("chatty")
            }
        }
        let lines = logged(|| tracing::info!(value = ?Chatty, "outer"));
        // tracing drops the nested event; the outer line stays whole.
        assert!(lines.iter().any(|l| l["value"] == "chatty"), "{lines:?}");
    }

    #[test]
    fn every_byte_that_needs_escaping_is_found_wherever_it_is() {
        // Every length up to two blocks of sixteen and a rest, so that each
        // way of scanning and each overlap is tried.
        for len in 1..=40 {
            every_byte_is_found_in(len);
        }
    }

    fn every_byte_is_found_in(len: usize) {
        for position in 0..len {
            for byte in (0u8..0x20).chain([b'"', b'\\']) {
                let mut text = vec![b'a'; len];
                text[position] = byte;
                assert!(needs_escape(&text), "{byte:#x} at {position} of {len}");
            }
            let mut text = vec![b'a'; len];
            // Neighbours of the escaped bytes, and bytes with the top bit set.
            for (i, byte) in [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff]
                .into_iter()
                .enumerate()
            {
                text[(position + i) % len] = byte;
            }
            assert!(!needs_escape(&text), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_survives_the_round_trip(message in ".*", value in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
            let lines = logged(|| tracing::info!(value = value.as_str(), "{message}"));
            proptest::prop_assert_eq!(lines.len(), 1);
            proptest::prop_assert_eq!(lines[0]["message"].as_str(), Some(message.as_str()));
            proptest::prop_assert_eq!(lines[0]["value"].as_str(), Some(value.as_str()));
        }
    }
}
