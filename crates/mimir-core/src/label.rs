//! The one rule for ids, names and labels that reach the store, logs and
//! URLs: not empty, at most [`LABEL_MAX_LEN`] bytes, no control characters.
//! Applying it everywhere keeps a hostile value from breaking a log line, a
//! terminal or a page, or from filling memory through a name.

use crate::submission::ValidationError;

/// Longest id, name or label, in bytes.
pub const LABEL_MAX_LEN: usize = 256;

/// [`check_label`] as a JSON schema pattern, for the OpenAPI document: no
/// control character, and not blank (it asks a little more: no leading
/// white space).
pub const LABEL_PATTERN: &str = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// Checks `value` of `field`: present, at most [`LABEL_MAX_LEN`] bytes, no
/// control characters (tabs and newlines included).
pub fn check_label(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(
            "missing_field",
            field,
            format!("{field} is required and must not be empty"),
        ));
    }
    check_optional_label(field, value)
}

/// [`check_label`] for a value that may be empty.
pub fn check_optional_label(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > LABEL_MAX_LEN {
        return Err(ValidationError::new(
            "invalid_value",
            field,
            format!(
                "{field} is {} bytes long; at most {LABEL_MAX_LEN} are allowed",
                value.len()
            ),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ValidationError::new(
            "invalid_value",
            field,
            format!("{field} holds the control character {c:?}; ids and names may not"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_printable() {
        assert!(check_label("name", "nightly-etl ✓").is_ok());
        assert!(check_label("name", &"x".repeat(LABEL_MAX_LEN)).is_ok());
        let cases = [
            ("", "missing_field"),
            ("  ", "missing_field"),
            ("a\nb", "invalid_value"),
            ("a\u{1b}[31m", "invalid_value"),
            ("a\u{0}", "invalid_value"),
            ("a\u{85}", "invalid_value"),
        ];
        for (value, code) in cases {
            let err = check_label("name", value).expect_err(value);
            assert_eq!((err.code, err.field.as_str()), (code, "name"), "{value:?}");
        }
        let long = check_label("name", &"é".repeat(LABEL_MAX_LEN / 2 + 1)).expect_err("long");
        assert_eq!(long.code, "invalid_value");
        assert!(check_optional_label("model_id", "").is_ok());
    }
}
