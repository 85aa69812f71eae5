//! Push request bodies: Loki's protobuf (`logproto.PushRequest`, snappy
//! block-compressed) or its JSON (with structured metadata as a third element
//! of each value).

use std::collections::BTreeMap;
use tracing::Level;

/// Wire format of push requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/x-protobuf`, snappy compressed: Loki's native format.
    #[default]
    Protobuf,
    /// `application/json`.
    Json,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "protobuf" => Ok(Encoding::Protobuf),
            "json" => Ok(Encoding::Json),
            _ => Err(format!(
                "{s:?} is not a Loki encoding; use protobuf or json"
            )),
        }
    }
}

/// One log line on its way to Loki.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it was logged, in nanoseconds since the Unix epoch.
    pub timestamp_ns: i128,
    /// Its level, which becomes the `level` label.
    pub level: Level,
    /// The line: the event as a JSON object.
    pub line: String,
    /// Structured metadata (correlation ids).
    pub metadata: Vec<(&'static str, String)>,
}

/// The `level` label value.
pub(crate) fn level_label(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// A stream's sorted labels and its entries in time order.
type Stream<'a> = (Vec<(String, String)>, Vec<&'a Entry>);

/// Entries grouped into streams, one per level.
fn streams<'a>(
    entries: &'a [Entry],
    service: &str,
    labels: &[(String, String)],
) -> Vec<Stream<'a>> {
    let mut by_level: BTreeMap<&'static str, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        by_level
            .entry(level_label(entry.level))
            .or_default()
            .push(entry);
    }
    let mut out = Vec::new();
    for (level, mut entries) in by_level {
        entries.sort_by_key(|e| e.timestamp_ns);
        let mut stream: Vec<(String, String)> = labels.to_vec();
        stream.push(("level".into(), level.into()));
        stream.push(("service".into(), service.into()));
        stream.sort();
        out.push((stream, entries));
    }
    out
}

/// The body and its content type.
pub(crate) fn encode(
    entries: &[Entry],
    service: &str,
    labels: &[(String, String)],
    encoding: Encoding,
) -> (Vec<u8>, &'static str) {
    let streams = streams(entries, service, labels);
    match encoding {
        Encoding::Json => (json(&streams), "application/json"),
        Encoding::Protobuf => (protobuf(&streams), "application/x-protobuf"),
    }
}

fn json(streams: &[Stream<'_>]) -> Vec<u8> {
    use serde_json::{Map, Value, json};
    let streams: Vec<Value> = streams
        .iter()
        .map(|(labels, entries)| {
            let stream: Map<String, Value> = labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let values: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut value = vec![json!(e.timestamp_ns.to_string()), json!(e.line)];
                    if !e.metadata.is_empty() {
                        let metadata: Map<String, Value> = e
                            .metadata
                            .iter()
                            .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
                            .collect();
                        value.push(Value::Object(metadata));
                    }
                    Value::Array(value)
                })
                .collect();
            json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).unwrap_or_default()
}

fn protobuf(streams: &[Stream<'_>]) -> Vec<u8> {
    use prost::Message;
    let request = proto::PushRequest {
        streams: streams
            .iter()
            .map(|(labels, entries)| proto::StreamAdapter {
                labels: label_string(labels),
                entries: entries
                    .iter()
                    .map(|e| proto::EntryAdapter {
                        timestamp: Some(proto::Timestamp {
                            seconds: e.timestamp_ns.div_euclid(1_000_000_000) as i64,
                            nanos: e.timestamp_ns.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: e.line.clone(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(k, v)| proto::LabelPairAdapter {
                                name: (*k).to_string(),
                                value: v.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    let raw = request.encode_to_vec();
    // Loki reads snappy's block format, not its framing format.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Labels in Prometheus text form, `{level="info", service="mimir-aip"}`.
pub(crate) fn label_string(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Loki's push messages (`pkg/push/push.proto`), written out by hand so the
/// build needs no protoc.
mod proto {
    /// A push: streams of entries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        /// The streams.
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    /// One stream: its labels and entries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        /// Labels in Prometheus text form.
        #[prost(string, tag = "1")]
        pub labels: String,
        /// Entries, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        /// Unused by clients.
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    /// One line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        /// When.
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        /// The line.
        #[prost(string, tag = "2")]
        pub line: String,
        /// Structured metadata.
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    /// A name and value of structured metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        /// Seconds since the Unix epoch.
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        /// Nanoseconds within the second.
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                timestamp_ns: 1_700_000_000_000_000_002,
                level: Level::INFO,
                line: r#"{"message":"second"}"#.into(),
                metadata: vec![("worktask_id", "t-1".into())],
            },
            Entry {
                timestamp_ns: 1_700_000_000_000_000_001,
                level: Level::INFO,
                line: r#"{"message":"first"}"#.into(),
                metadata: vec![],
            },
            Entry {
                timestamp_ns: 1_700_000_000_500_000_000,
                level: Level::ERROR,
                line: r#"{"message":"broken"}"#.into(),
                metadata: vec![("trace_id", "abc".into()), ("worker_id", "w".into())],
            },
        ]
    }

    #[test]
    fn json_groups_lines_into_one_stream_per_level_in_time_order() {
        let labels = vec![("env".to_string(), "prod".to_string())];
        let (body, content_type) = encode(&entries(), "mimir-aip", &labels, Encoding::Json);
        assert_eq!(content_type, "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"streams": [
                {"stream": {"env": "prod", "level": "error", "service": "mimir-aip"},
                 "values": [["1700000000500000000", r#"{"message":"broken"}"#, {"trace_id": "abc", "worker_id": "w"}]]},
                {"stream": {"env": "prod", "level": "info", "service": "mimir-aip"},
                 "values": [["1700000000000000001", r#"{"message":"first"}"#],
                            ["1700000000000000002", r#"{"message":"second"}"#, {"worktask_id": "t-1"}]]}
            ]})
        );
    }

    #[test]
    fn protobuf_is_snappy_compressed_push_request() {
        let (body, content_type) = encode(&entries(), "mimir-aip", &[], Encoding::Protobuf);
        assert_eq!(content_type, "application/x-protobuf");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("snappy block format");
        let request = proto::PushRequest::decode(raw.as_slice()).expect("protobuf");
        assert_eq!(request.streams.len(), 2);
        let info = &request.streams[1];
        assert_eq!(info.labels, r#"{level="info", service="mimir-aip"}"#);
        assert_eq!(info.entries[0].line, r#"{"message":"first"}"#);
        let second = &info.entries[1];
        assert_eq!(
            second.timestamp,
            Some(proto::Timestamp {
                seconds: 1_700_000_000,
                nanos: 2
            })
        );
        assert_eq!(second.structured_metadata[0].name, "worktask_id");
        assert_eq!(second.structured_metadata[0].value, "t-1");
    }

    #[test]
    fn label_values_are_escaped() {
        let labels = vec![("a".to_string(), "say \"hi\"\\\n".to_string())];
        assert_eq!(label_string(&labels), r#"{a="say \"hi\"\\\n"}"#);
    }
}
