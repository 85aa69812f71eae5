//! Entity type and attribute names. They become table, column, key and
//! folder names, so they are checked once, here, against one rule that is
//! safe on every backend: an ASCII letter or `_`, then letters, digits or
//! `_`, at most 63 bytes (PostgreSQL's identifier limit), not starting with
//! `__` (reserved for the connectors' own columns and keys).

use crate::StorageError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The longest name, in bytes.
pub const NAME_MAX_LEN: usize = 63;

/// A checked entity type or attribute name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Checks `name`; `what` says what it names, for the error.
    pub fn new(name: &str, what: &str) -> Result<Name, StorageError> {
        let valid_start = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if name.is_empty() || name.len() > NAME_MAX_LEN || !valid_start || !valid_rest {
            return Err(StorageError::invalid(format!(
                "{what} {name:?} is not a valid name: use a letter or _ then letters, digits or _, at most {NAME_MAX_LEN} characters"
            )));
        }
        if name.starts_with("__") {
            return Err(StorageError::invalid(format!(
                "{what} {name:?} starts with __, which is reserved"
            )));
        }
        Ok(Name(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        let name = String::deserialize(deserializer)?;
        Name::new(&name, "name").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_identifiers() {
        for name in ["a", "_x", "Customer_2", &"a".repeat(63)] {
            assert!(Name::new(name, "attribute").is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_what_could_escape_a_quote_or_path() {
        for name in [
            "",
            "1a",
            "a b",
            "a;DROP TABLE x",
            "a\"b",
            "a`b",
            "a'b",
            "../etc",
            "a/b",
            "a:b",
            "é",
            "__id",
            &"a".repeat(64),
        ] {
            let error = Name::new(name, "attribute").err();
            assert!(error.is_some(), "{name:?} was accepted");
        }
    }
}
