//! `file.read`: reads a file into a CIR document.

use super::FileFormat;
use crate::confinement::FileRoots;
use crate::params::{literals, reject_unknown, require, required_string, string};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext, cir};
use async_trait::async_trait;
use serde_json::{Map, Number, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DOC: ActionDoc = ActionDoc {
    summary: "Reads a file inside the file roots into a CIR document.",
    parameters: &[
        ParamDoc::required(
            "path",
            ParamType::String,
            "The file; a relative path is taken from the first file root.",
        ),
        ParamDoc::optional(
            "format",
            ParamType::String,
            Some("from the extension"),
            "csv, json, ndjson or text.",
        ),
    ],
    returns: "a CIR document {version, source, data, metadata}: data is an array of row objects (csv), \
              an array of the lines' values (ndjson), the value (json) or the string (text)",
};

/// `file.read`: reads `path` as `format` (csv, json, ndjson or text; default
/// from the extension) and returns a CIR document (see [`cir::file_document`]).
///
/// `data` is: for csv, an array of objects keyed by the header row, where a
/// cell that is a JSON number or `true`/`false` becomes that number or boolean
/// and every other cell stays a string (so `007` and `12345678901234567890123`
/// keep their digits); for ndjson, an array of the lines' values (blank lines
/// are skipped); for json, the value; for text, the string.
///
/// Only files inside the file roots can be read: a relative path is taken
/// from the first root, and one that leads outside every root (by `..`, an
/// absolute path or a symlink) fails the step naming the path and the roots
/// (see [`crate::confinement`]). The whole file is held in memory; the
/// pipeline context cap bounds what a step keeps.
#[derive(Debug)]
pub struct FileRead {
    roots: Arc<FileRoots>,
}

impl FileRead {
    /// The action, confined to `roots`.
    pub fn new(roots: Arc<FileRoots>) -> FileRead {
        FileRead { roots }
    }
}

#[async_trait]
impl Action for FileRead {
    fn plugin(&self) -> &'static str {
        "file"
    }

    fn action(&self) -> &'static str {
        "read"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "path")?;
        let literals = literals(params);
        let path = string(&literals, "path")?;
        FileFormat::from_params(&literals, path)?;
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        _run: &RunContext,
    ) -> Result<Value, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        let path = required_string(&params, "path")?.to_string();
        let format = FileFormat::from_params(&params, Some(&path))?
            .ok_or_else(|| ActionError::parameter("format", "is required"))?;
        let roots = self.roots.clone();
        let shown = path.clone();
        let (data, bytes, columns) = tokio::task::spawn_blocking(move || {
            let mut file = roots.open_read(&shown)?;
            let mut content = Vec::new();
            file.read_to_end(&mut content)
                .map_err(|source| ActionError::Io {
                    op: "read",
                    path: PathBuf::from(&shown),
                    source,
                })?;
            let (data, columns) = decode(Path::new(&shown), format, &content)?;
            Ok::<_, ActionError>((data, content.len(), columns))
        })
        .await
        .map_err(|e| ActionError::failed(format!("reading {path} stopped: {e}")))??;
        Ok(cir::file_document(
            &path,
            format.as_str(),
            data,
            bytes,
            columns,
        ))
    }
}

/// Parses `content` as `format`; CSV also returns its header, in file order.
pub(crate) fn decode(
    path: &Path,
    format: FileFormat,
    content: &[u8],
) -> Result<(Value, Option<Vec<String>>), ActionError> {
    let parse_error = |message: String| ActionError::Parse {
        path: path.to_path_buf(),
        format: format.as_str(),
        message,
    };
    match format {
        FileFormat::Json => serde_json::from_slice(content)
            .map(|v| (v, None))
            .map_err(|e| parse_error(e.to_string())),
        FileFormat::Text => std::str::from_utf8(content)
            .map(|s| (Value::String(s.to_string()), None))
            .map_err(|e| parse_error(format!("not UTF-8: {e}"))),
        FileFormat::Ndjson => {
            let mut values = Vec::new();
            for (i, line) in content.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value = serde_json::from_slice(line)
                    .map_err(|e| parse_error(format!("line {}: {e}", i + 1)))?;
                values.push(value);
            }
            Ok((Value::Array(values), None))
        }
        FileFormat::Csv => {
            let (rows, columns) = decode_csv(content).map_err(parse_error)?;
            Ok((rows, Some(columns)))
        }
    }
}

fn decode_csv(content: &[u8]) -> Result<(Value, Vec<String>), String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(content);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    for (i, column) in columns.iter().enumerate() {
        if columns[..i].contains(column) {
            return Err(format!("the header names column \"{column}\" twice"));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let mut row = Map::new();
        for (column, cell) in columns.iter().zip(record.iter()) {
            row.insert(column.clone(), csv_cell(cell));
        }
        rows.push(Value::Object(row));
    }
    Ok((Value::Array(rows), columns))
}

/// A CSV cell as JSON: numbers and booleans when the text is exactly one,
/// otherwise the text. Integers beyond 64 bits stay text so no digit is lost.
pub(crate) fn csv_cell(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let looks_numeric = text
        .bytes()
        .next()
        .is_some_and(|b| b == b'-' || b.is_ascii_digit())
        && text.trim() == text;
    if looks_numeric && let Ok(number) = serde_json::from_str::<Number>(text) {
        let exact = number.is_i64() || number.is_u64() || text.contains(['.', 'e', 'E']);
        if exact {
            return Value::Number(number);
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_become_numbers_and_booleans_only_when_exact() {
        assert_eq!(csv_cell("42"), json!(42));
        assert_eq!(csv_cell("-1.5"), json!(-1.5));
        assert_eq!(csv_cell("1e3"), json!(1000.0));
        assert_eq!(csv_cell("true"), json!(true));
        for text in [
            "007",
            "",
            " 1",
            "1 ",
            "12345678901234567890123",
            "abc",
            "True",
            "1e999",
            "+1",
        ] {
            assert_eq!(csv_cell(text), json!(text), "{text:?}");
        }
    }

    #[test]
    fn decodes_each_format() {
        let p = Path::new("x");
        let (v, cols) = decode(p, FileFormat::Csv, b"b,a\n1,x\n2,\n").unwrap();
        assert_eq!(v, json!([{"b": 1, "a": "x"}, {"b": 2, "a": ""}]));
        assert_eq!(cols, Some(vec!["b".to_string(), "a".to_string()]));
        let (v, _) = decode(p, FileFormat::Ndjson, b"{\"a\":1}\n\n[2]\r\n").unwrap();
        assert_eq!(v, json!([{"a": 1}, [2]]));
        let (v, _) = decode(p, FileFormat::Json, b" {\"a\": [1]} ").unwrap();
        assert_eq!(v, json!({"a": [1]}));
        let (v, _) = decode(p, FileFormat::Text, "héllo\n".as_bytes()).unwrap();
        assert_eq!(v, json!("héllo\n"));
    }

    #[test]
    fn parse_errors_name_the_file_format_and_position() {
        let p = Path::new("in.ndjson");
        let err = decode(p, FileFormat::Ndjson, b"{}\n{oops\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("in.ndjson is not valid ndjson: line 2:"),
            "{err}"
        );
        let err = decode(Path::new("in.csv"), FileFormat::Csv, b"a,b\n1\n").unwrap_err();
        assert!(err.to_string().contains("in.csv is not valid csv"), "{err}");
        let err = decode(Path::new("in.csv"), FileFormat::Csv, b"a,a\n1,2\n").unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let err = decode(p, FileFormat::Text, &[0xff, 0xfe]).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
