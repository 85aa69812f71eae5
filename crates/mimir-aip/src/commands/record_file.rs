//! Reading records from a CSV, JSON or NDJSON file in batches, for
//! `mimir-aip storage store --file`.
//!
//! CSV and NDJSON stream: memory holds one batch, whatever the file's size.
//! A JSON file (an array of objects, or a CIR document whose `data` is one)
//! is read whole, so large files are better sent as NDJSON or CSV. CSV
//! cells become numbers, booleans or null where they read as one (unless
//! `strings` is set), so filters like `age gt 30` compare numbers.

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// An array of objects, or a CIR document with an array `data`.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl RecordFormat {
    /// The format a file name suggests.
    pub fn of(path: &Path) -> Option<RecordFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(RecordFormat::Csv),
            "json" => Some(RecordFormat::Json),
            "ndjson" | "jsonl" => Some(RecordFormat::Ndjson),
            _ => None,
        }
    }
}

/// Reads records a batch at a time.
pub struct RecordReader {
    source: Source,
    /// Records read so far.
    pub records: u64,
    strings: bool,
}

enum Source {
    Csv(csv::Reader<CountingReader>, Vec<String>),
    Lines(BufReader<CountingReader>, u64),
    Whole(std::vec::IntoIter<Value>),
}

/// Counts bytes read, for the progress bar.
pub struct CountingReader {
    inner: File,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl RecordReader {
    /// Opens `path`; `read` counts the bytes consumed.
    pub fn open(
        path: &Path,
        format: RecordFormat,
        strings: bool,
        read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> anyhow::Result<RecordReader> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let counting = CountingReader { inner: file, read };
        let source = match format {
            RecordFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().from_reader(counting);
                let header = reader
                    .headers()
                    .with_context(|| format!("cannot read the header row of {}", path.display()))?
                    .iter()
                    .map(|h| h.trim().to_string())
                    .collect::<Vec<_>>();
                if header.is_empty() || header.iter().any(String::is_empty) {
                    bail!(
                        "{} has an empty column name in its header row",
                        path.display()
                    );
                }
                Source::Csv(reader, header)
            }
            RecordFormat::Ndjson => Source::Lines(BufReader::new(counting), 0),
            RecordFormat::Json => {
                let value: Value = serde_json::from_reader(BufReader::new(counting))
                    .with_context(|| format!("{} is not valid JSON", path.display()))?;
                let items = match value {
                    Value::Array(items) => items,
                    Value::Object(mut doc) if doc.get("data").is_some_and(Value::is_array) => {
                        match doc.remove("data") {
                            Some(Value::Array(items)) => items,
                            _ => Vec::new(),
                        }
                    }
                    Value::Object(record) => vec![Value::Object(record)],
                    _ => bail!(
                        "{} must hold an array of objects or a CIR document",
                        path.display()
                    ),
                };
                Source::Whole(items.into_iter())
            }
        };
        Ok(RecordReader {
            source,
            records: 0,
            strings,
        })
    }

    /// Up to `size` next records; empty at the end. Errors name the line or
    /// row.
    pub fn batch(&mut self, size: usize) -> anyhow::Result<Vec<Value>> {
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            let next = match &mut self.source {
                Source::Csv(reader, header) => {
                    let mut row = csv::StringRecord::new();
                    if !reader.read_record(&mut row)? {
                        break;
                    }
                    let mut record = Map::new();
                    for (name, cell) in header.iter().zip(row.iter()) {
                        record.insert(name.clone(), cell_value(cell, self.strings));
                    }
                    Value::Object(record)
                }
                Source::Lines(reader, line_number) => {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 {
                        break;
                    }
                    *line_number += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let value: Value = serde_json::from_str(&line)
                        .with_context(|| format!("line {line_number} is not valid JSON"))?;
                    if !value.is_object() {
                        bail!("line {line_number} is not a JSON object");
                    }
                    value
                }
                Source::Whole(items) => match items.next() {
                    Some(value) if value.is_object() => value,
                    Some(_) => bail!("record {} is not a JSON object", self.records + 1),
                    None => break,
                },
            };
            batch.push(next);
            self.records += 1;
        }
        Ok(batch)
    }
}

/// A CSV cell as JSON: a number, boolean or null where it reads as one.
fn cell_value(cell: &str, strings: bool) -> Value {
    if strings {
        return Value::String(cell.to_string());
    }
    if cell.is_empty() {
        return Value::Null;
    }
    match cell {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    // Numbers keep their text's meaning: no leading zeros ("007" is an id,
    // not 7), no "+", no "inf"/"nan".
    let looks_numeric = cell
        .bytes()
        .all(|b| b.is_ascii_digit() || b"-.eE".contains(&b))
        && !(cell.len() > 1 && cell.starts_with('0') && !cell.starts_with("0."))
        && !(cell.starts_with("-0") && cell.len() > 2 && !cell.starts_with("-0."));
    if looks_numeric {
        if let Ok(n) = cell.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(x) = cell.parse::<f64>()
            && x.is_finite()
            && let Some(n) = serde_json::Number::from_f64(x)
        {
            return Value::Number(n);
        }
    }
    Value::String(cell.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_become_typed_values() {
        for (cell, expected) in [
            ("42", json!(42)),
            ("-3", json!(-3)),
            ("2.5", json!(2.5)),
            ("0", json!(0)),
            ("0.5", json!(0.5)),
            ("007", json!("007")),
            ("1e3", json!(1000.0)),
            ("true", json!(true)),
            ("", Value::Null),
            ("inf", json!("inf")),
            ("12abc", json!("12abc")),
            ("+1", json!("+1")),
        ] {
            assert_eq!(cell_value(cell, false), expected, "{cell:?}");
        }
        assert_eq!(cell_value("42", true), json!("42"));
    }

    fn reader(text: &str, format: RecordFormat) -> anyhow::Result<RecordReader> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, text)?;
        let reader = RecordReader::open(&path, format, false, Default::default())?;
        drop(dir);
        Ok(reader)
    }

    #[test]
    fn reads_each_format_in_batches() -> anyhow::Result<()> {
        let mut csv = reader("id,name\n1,a\n2,b\n3,c\n", RecordFormat::Csv)?;
        assert_eq!(
            csv.batch(2)?,
            vec![json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})]
        );
        assert_eq!(csv.batch(2)?, vec![json!({"id": 3, "name": "c"})]);
        assert!(csv.batch(2)?.is_empty());
        let mut lines = reader("{\"a\":1}\n\n{\"a\":2}\n", RecordFormat::Ndjson)?;
        assert_eq!(lines.batch(10)?.len(), 2);
        let mut doc = reader(
            r#"{"version":"1.0","data":[{"a":1},{"a":2}]}"#,
            RecordFormat::Json,
        )?;
        assert_eq!(doc.batch(10)?.len(), 2);
        Ok(())
    }

    #[test]
    fn bad_files_name_the_line() -> anyhow::Result<()> {
        let mut lines = reader("{\"a\":1}\nnot json\n", RecordFormat::Ndjson)?;
        let error = lines.batch(10).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("line 2")));
        let mut scalars = reader("[1]", RecordFormat::Json)?;
        assert!(scalars.batch(10).is_err());
        assert!(reader("id,\n1,2\n", RecordFormat::Csv).is_err());
        Ok(())
    }
}
