//! The pipeline context and its size cap.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io;

/// The default cap on the serialized pipeline context: 10 MiB.
pub const DEFAULT_CONTEXT_CAP_BYTES: usize = 10 * 1024 * 1024;

/// Step name → entry, with the size of its compact JSON form kept up to date
/// so the cap is checked without serializing the whole context after every
/// step.
#[derive(Debug, Default)]
pub(crate) struct Context {
    entries: Map<String, Value>,
    /// Compact JSON bytes of each entry's `"name":value` pair, by name.
    pair_bytes: HashMap<String, usize>,
    /// Compact JSON bytes of `entries` as a whole.
    bytes: usize,
}

impl Context {
    pub(crate) fn new() -> Context {
        Context {
            entries: Map::new(),
            pair_bytes: HashMap::new(),
            bytes: 2, // `{}`
        }
    }

    pub(crate) fn entries(&self) -> &Map<String, Value> {
        &self.entries
    }

    /// The size of the compact JSON form of the entries.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn into_entries(self) -> Map<String, Value> {
        self.entries
    }

    /// The size the context would have with `entry` stored under `name`, and
    /// that pair's own size.
    pub(crate) fn size_with(&self, name: &str, entry: &Value) -> (usize, usize) {
        let pair = json_len(&name) + 1 + json_len(entry);
        let size = match self.pair_bytes.get(name) {
            Some(old) => self.bytes - old + pair,
            None if self.entries.is_empty() => self.bytes + pair,
            None => self.bytes + pair + 1, // the comma before it
        };
        (size, pair)
    }

    /// Stores `entry` under `name`; `size` and `pair` come from
    /// [`Context::size_with`] for the same arguments.
    pub(crate) fn insert(&mut self, name: &str, entry: Value, (size, pair): (usize, usize)) {
        self.entries.insert(name.to_string(), entry);
        self.pair_bytes.insert(name.to_string(), pair);
        self.bytes = size;
        debug_assert_eq!(self.bytes, json_len(&self.entries));
    }
}

/// Length of the compact JSON form of `value`, without building it.
pub(crate) fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    // Writing to a counter cannot fail, and the values here are JSON already.
    if serde_json::to_writer(&mut counter, value).is_err() {
        debug_assert!(false, "serializing a JSON value failed");
    }
    counter.0
}

struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A byte count for people: `512 bytes`, `3.4 KiB`, `12.3 MiB`.
pub fn human_bytes(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    // Precision loss above 2^52 bytes is irrelevant for a message.
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} bytes")
    } else if b < MIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tracks_the_serialized_size_through_inserts_and_replacements() {
        let mut ctx = Context::new();
        for (name, entry) in [
            ("a", json!({"x": 1})),
            ("b", json!("text with \"quotes\" and é")),
            ("a", json!([1, 2, 3])),
            ("c", json!(null)),
        ] {
            let sized = ctx.size_with(name, &entry);
            ctx.insert(name, entry, sized);
            assert_eq!(ctx.bytes, serde_json::to_vec(ctx.entries()).unwrap().len());
        }
    }

    #[test]
    fn formats_sizes_for_people() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(DEFAULT_CONTEXT_CAP_BYTES), "10.0 MiB");
        assert_eq!(human_bytes(12_897_485), "12.3 MiB");
    }
}
