//! The file formats `file.read` and `file.write` speak.

use crate::ActionError;
use crate::params::string;
use serde_json::{Map, Value};
use std::path::Path;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row; records are objects.
    Csv,
    /// One JSON value.
    Json,
    /// One JSON value per line.
    Ndjson,
    /// UTF-8 text.
    Text,
}

const NAMES: &str = "csv, json, ndjson, text";

impl FileFormat {
    /// The format's name as parameters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Text => "text",
        }
    }

    /// The format named `name`.
    pub fn from_name(name: &str) -> Option<FileFormat> {
        match name {
            "csv" => Some(FileFormat::Csv),
            "json" => Some(FileFormat::Json),
            "ndjson" => Some(FileFormat::Ndjson),
            "text" => Some(FileFormat::Text),
            _ => None,
        }
    }

    /// The format a file name suggests: `.csv`, `.json`, `.ndjson`/`.jsonl`,
    /// `.txt`/`.text`/`.log`/`.md` (case-insensitive).
    pub fn from_extension(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(FileFormat::Csv),
            "json" => Some(FileFormat::Json),
            "ndjson" | "jsonl" => Some(FileFormat::Ndjson),
            "txt" | "text" | "log" | "md" => Some(FileFormat::Text),
            _ => None,
        }
    }

    /// The `format` parameter, or when absent the format of `path`'s extension.
    /// `path` is `None` when it is not known yet (a reference at check time).
    pub(crate) fn from_params(
        params: &Map<String, Value>,
        path: Option<&str>,
    ) -> Result<Option<FileFormat>, ActionError> {
        if let Some(name) = string(params, "format")? {
            return FileFormat::from_name(name).map(Some).ok_or_else(|| {
                ActionError::parameter("format", format!("must be one of {NAMES}, got \"{name}\""))
            });
        }
        let Some(path) = path else {
            return Ok(None);
        };
        FileFormat::from_extension(Path::new(path)).map(Some).ok_or_else(|| {
            ActionError::parameter(
                "format",
                format!(
                    "is required when the file name does not tell ({NAMES}; \"{path}\" has no known extension)"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_come_from_the_parameter_or_the_extension() {
        let p = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            FileFormat::from_params(&p(json!({"format": "ndjson"})), Some("x.csv")).unwrap(),
            Some(FileFormat::Ndjson)
        );
        assert_eq!(
            FileFormat::from_params(&p(json!({})), Some("dir/X.JSONL")).unwrap(),
            Some(FileFormat::Ndjson)
        );
        assert_eq!(FileFormat::from_params(&p(json!({})), None).unwrap(), None);
        let err = FileFormat::from_params(&p(json!({})), Some("data.bin")).unwrap_err();
        assert!(err.to_string().contains("data.bin"), "{err}");
        let err = FileFormat::from_params(&p(json!({"format": "xml"})), None).unwrap_err();
        assert!(err.to_string().contains(NAMES), "{err}");
    }
}
