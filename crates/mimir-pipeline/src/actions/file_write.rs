//! `file.write`: writes data to a file, atomically.

use super::FileFormat;
use crate::confinement::FileRoots;
use crate::params::{literals, reject_unknown, require, required_string, string, wrong_type};
use crate::reference::kind;
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext, cir};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DOC: ActionDoc = ActionDoc {
    summary: "Writes data to a file inside the file roots, atomically (temporary file, then rename).",
    parameters: &[
        ParamDoc::required(
            "path",
            ParamType::String,
            "The file; a relative path is taken from the first file root. Missing directories are created.",
        ),
        ParamDoc::optional(
            "format",
            ParamType::String,
            Some("from the extension"),
            "csv, json, ndjson or text.",
        ),
        ParamDoc::required(
            "data",
            ParamType::Any,
            "What to write; of a CIR document, its data. csv takes an array of objects.",
        ),
        ParamDoc::optional(
            "columns",
            ParamType::Array,
            Some("the document's metadata.columns, else every key in first-seen order"),
            "csv only: the header row, an array of strings.",
        ),
    ],
    returns: "{path, bytes}: the path as given and the bytes written",
};

/// `file.write`: writes `data` to `path` as `format` (csv, json, ndjson or
/// text; default from the extension) and returns `{path, bytes}`.
///
/// When `data` is a CIR document its `data` is written. csv takes an array of
/// objects and writes a header row: the `columns` parameter if given, else
/// the document's `metadata.columns` (so a file read and written back keeps
/// its column order), else every key in first-seen order; strings are written
/// as they are, null as an empty cell, other values as JSON. ndjson writes
/// each element of an array on its own line (any other value as one line),
/// json writes the value pretty-printed, text writes a string.
///
/// Only files inside the file roots can be written: a relative path is taken
/// from the first root, and one that leads outside every root (by `..`, an
/// absolute path or a symlink) fails the step naming the path and the roots
/// (see [`crate::confinement`]). Missing parent directories are created. The
/// content goes to a temporary file in the same directory, is flushed to
/// disk, then renamed over `path`, so readers and crashes never see half a
/// file.
#[derive(Debug)]
pub struct FileWrite {
    roots: Arc<FileRoots>,
}

impl FileWrite {
    /// The action, confined to `roots`.
    pub fn new(roots: Arc<FileRoots>) -> FileWrite {
        FileWrite { roots }
    }
}

#[async_trait]
impl Action for FileWrite {
    fn plugin(&self) -> &'static str {
        "file"
    }

    fn action(&self) -> &'static str {
        "write"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "path")?;
        require(params, "data")?;
        let literals = literals(params);
        let path = string(&literals, "path")?;
        FileFormat::from_params(&literals, path)?;
        columns(&literals)?;
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
        let mut columns = columns(&params)?;
        let mut data = params
            .get("data")
            .cloned()
            .ok_or_else(|| ActionError::parameter("data", "is required"))?;
        if cir::is_document(&data) {
            if columns.is_none() {
                columns = document_columns(&data);
            }
            data = data
                .as_object_mut()
                .and_then(|doc| doc.remove("data"))
                .unwrap_or(Value::Null);
        }
        let roots = self.roots.clone();
        let shown = path.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let content = encode(format, &data, columns.as_deref())?;
            let target = roots.write_target(&shown)?;
            write_atomically(&target, &shown, &content, &|temp| {
                roots.verify_opened(&shown, temp)
            })?;
            Ok::<_, ActionError>(content.len())
        })
        .await
        .map_err(|e| ActionError::failed(format!("writing {path} stopped: {e}")))??;
        Ok(json!({"path": path, "bytes": bytes}))
    }
}

/// The `columns` parameter: an array of strings.
fn columns(params: &Map<String, Value>) -> Result<Option<Vec<String>>, ActionError> {
    let Some(value) = params.get("columns") else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(wrong_type("columns", "an array of strings", value));
    };
    let mut columns = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => columns.push(s.clone()),
            other => return Err(wrong_type("columns", "an array of strings", other)),
        }
    }
    Ok(Some(columns))
}

fn document_columns(document: &Value) -> Option<Vec<String>> {
    let items = document.get("metadata")?.get("columns")?.as_array()?;
    items
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// `data` in `format`.
pub(crate) fn encode(
    format: FileFormat,
    data: &Value,
    columns: Option<&[String]>,
) -> Result<Vec<u8>, ActionError> {
    let refuse = |message: String| ActionError::Encode {
        format: format.as_str(),
        message,
    };
    match format {
        FileFormat::Json => {
            let mut out = serde_json::to_vec_pretty(data).map_err(|e| refuse(e.to_string()))?;
            out.push(b'\n');
            Ok(out)
        }
        FileFormat::Ndjson => {
            let single = std::slice::from_ref(data);
            let values = match data {
                Value::Array(items) => items.as_slice(),
                _ => single,
            };
            let mut out = Vec::new();
            for value in values {
                serde_json::to_writer(&mut out, value).map_err(|e| refuse(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
        FileFormat::Text => match data {
            Value::String(s) => Ok(s.clone().into_bytes()),
            other => Err(refuse(format!("text needs a string, got {}", kind(other)))),
        },
        FileFormat::Csv => encode_csv(data, columns).map_err(refuse),
    }
}

fn encode_csv(data: &Value, columns: Option<&[String]>) -> Result<Vec<u8>, String> {
    let Value::Array(rows) = data else {
        return Err(format!("csv needs an array of objects, got {}", kind(data)));
    };
    let mut objects = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match row {
            Value::Object(map) => objects.push(map),
            other => return Err(format!("row {i} is {}, not an object", kind(other))),
        }
    }
    let header: Vec<String> = match columns {
        Some(columns) => columns.to_vec(),
        None => {
            let mut header: Vec<String> = Vec::new();
            for object in &objects {
                for key in object.keys() {
                    if !header.contains(key) {
                        header.push(key.clone());
                    }
                }
            }
            header
        }
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    if !header.is_empty() {
        writer.write_record(&header).map_err(|e| e.to_string())?;
    }
    for object in objects {
        let cells = header.iter().map(|column| match object.get(column) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
        writer.write_record(cells).map_err(|e| e.to_string())?;
    }
    writer.into_inner().map_err(|e| e.to_string())
}

/// Writes `content` to `target` (already checked and with its directory
/// made) through a temporary file in the same directory and a rename. `verify`
/// sees the temporary file once created. Errors name `shown`, the path as
/// the step gave it.
pub(crate) fn write_atomically(
    target: &Path,
    shown: &str,
    content: &[u8],
    verify: &dyn Fn(&std::fs::File) -> Result<(), ActionError>,
) -> Result<(), ActionError> {
    let io = |op: &'static str, source: std::io::Error| ActionError::Io {
        op,
        path: PathBuf::from(shown),
        source,
    };
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".mimir-write-").suffix(".tmp");
    // Temporary files are private (0600) by default; ask for 0666 so the
    // umask decides, as it would for a plain create.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temp = builder.tempfile_in(dir).map_err(|e| io("write", e))?;
    // Dropping `temp` on an error removes it.
    verify(temp.as_file())?;
    temp.write_all(content).map_err(|e| io("write", e))?;
    // Flush to disk before the rename so a crash leaves the old file or the
    // new one, never a truncated new one.
    temp.as_file().sync_all().map_err(|e| io("write", e))?;
    temp.persist(target).map_err(|e| io("replace", e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_header_is_the_union_of_keys_in_first_seen_order() {
        let data = json!([{"a": 1, "b": "x,y"}, {"c": null, "a": [1]}]);
        let out = encode(FileFormat::Csv, &data, None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,c\n1,\"x,y\",\n[1],,\n"
        );
        let cols = ["b".to_string(), "a".to_string()];
        let out = encode(FileFormat::Csv, &data, Some(&cols)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "b,a\n\"x,y\",1\n,[1]\n");
    }

    #[test]
    fn refuses_data_that_does_not_fit_the_format() {
        let err = encode(FileFormat::Csv, &json!([{"a": 1}, 2]), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write csv: row 1 is a number, not an object"
        );
        let err = encode(FileFormat::Text, &json!({"a": 1}), None).unwrap_err();
        assert!(err.to_string().contains("needs a string"), "{err}");
    }

    #[test]
    fn ndjson_writes_one_value_per_line() {
        let out = encode(FileFormat::Ndjson, &json!([{"a": 1}, "x"]), None).unwrap();
        assert_eq!(out, b"{\"a\":1}\n\"x\"\n");
        let out = encode(FileFormat::Ndjson, &json!({"a": 1}), None).unwrap();
        assert_eq!(out, b"{\"a\":1}\n");
    }

    #[test]
    fn columns_must_be_strings() {
        let p = json!({"columns": ["a", 1]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(columns(&p).is_err());
    }
}
