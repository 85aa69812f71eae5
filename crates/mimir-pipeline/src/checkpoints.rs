//! A pipeline's durable checkpoints as one run sees them: what was stored
//! when the run started, and what the run saves, kept apart until the run
//! succeeds.

use crate::context::json_len;
use serde_json::{Map, Value};
use std::sync::Mutex;

/// Longest checkpoint key: 128 characters.
pub const MAX_CHECKPOINT_KEY_CHARS: usize = 128;

/// Most a run may save, as compact JSON of all its saved keys and values:
/// 64 KiB. Checkpoints are bookmarks (a last id, a timestamp), not data.
pub const MAX_STAGED_CHECKPOINT_BYTES: usize = 64 * 1024;

/// The checkpoints of the pipeline a run belongs to.
///
/// `checkpoint.load` reads a key saved earlier in the same run, else the
/// stored one; `checkpoint.save` only stages. The engine hands the staged
/// saves back in [`crate::Execution::checkpoints`] when the run succeeds, and
/// whoever stores the result makes them durable, so a failed run never moves
/// a bookmark. One value per run: a second run needs a fresh one.
#[derive(Debug, Default)]
pub struct Checkpoints {
    stored: Map<String, Value>,
    staged: Mutex<Map<String, Value>>,
}

impl Checkpoints {
    /// The checkpoints of a run starting with `stored` (key → value).
    pub fn new(stored: Map<String, Value>) -> Checkpoints {
        Checkpoints {
            stored,
            staged: Mutex::new(Map::new()),
        }
    }

    /// The value of `key`: saved in this run, else stored, else `None`.
    pub fn load(&self, key: &str) -> Option<Value> {
        if let Some(value) = self.lock().get(key) {
            return Some(value.clone());
        }
        self.stored.get(key).cloned()
    }

    /// Stages `value` under `key`, replacing any earlier save of it.
    ///
    /// Refused: a key that is empty, longer than
    /// [`MAX_CHECKPOINT_KEY_CHARS`] or has control characters, and a save
    /// that would take the staged total over [`MAX_STAGED_CHECKPOINT_BYTES`].
    pub fn save(&self, key: &str, value: Value) -> Result<(), String> {
        check_key(key)?;
        let mut staged = self.lock();
        let old = staged.insert(key.to_string(), value);
        let size = json_len(&*staged);
        if size > MAX_STAGED_CHECKPOINT_BYTES {
            match old {
                Some(old) => staged.insert(key.to_string(), old),
                None => staged.remove(key),
            };
            return Err(format!(
                "saving \"{key}\" would make this run's checkpoints {size} bytes, over the {MAX_STAGED_CHECKPOINT_BYTES}-byte limit"
            ));
        }
        Ok(())
    }

    /// What this run saved so far.
    pub fn staged(&self) -> Map<String, Value> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<String, Value>> {
        // A panic while holding the lock leaves a consistent map behind: every
        // change is one insert or remove.
        self.staged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why `key` cannot name a checkpoint, if it cannot.
pub fn check_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    if chars == 0 {
        return Err("must not be empty".to_string());
    }
    if chars > MAX_CHECKPOINT_KEY_CHARS {
        return Err(format!(
            "must be at most {MAX_CHECKPOINT_KEY_CHARS} characters, got {chars}"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_save_is_read_back_before_the_stored_value_and_only_staged() {
        let stored = json!({"last_id": 7})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let checkpoints = Checkpoints::new(stored);
        assert_eq!(checkpoints.load("last_id"), Some(json!(7)));
        assert_eq!(checkpoints.load("other"), None);
        checkpoints.save("last_id", json!(9)).expect("saved");
        assert_eq!(checkpoints.load("last_id"), Some(json!(9)));
        assert_eq!(Value::Object(checkpoints.staged()), json!({"last_id": 9}));
    }

    #[test]
    fn keys_and_the_staged_total_are_bounded() {
        let checkpoints = Checkpoints::default();
        assert!(checkpoints.save("", json!(1)).is_err());
        assert!(checkpoints.save(&"k".repeat(129), json!(1)).is_err());
        assert!(checkpoints.save(&"k".repeat(128), json!(1)).is_ok());
        assert!(checkpoints.save("a\nb", json!(1)).is_err());
        let big = "x".repeat(MAX_STAGED_CHECKPOINT_BYTES);
        let err = checkpoints.save("big", json!(big)).unwrap_err();
        assert!(err.contains("over the 65536-byte limit"), "{err}");
        assert_eq!(
            checkpoints.load("big"),
            None,
            "a refused save stages nothing"
        );
        checkpoints.save("big", json!("small")).expect("fits");
        assert!(checkpoints.save("big", json!(big)).is_err());
        assert_eq!(
            checkpoints.load("big"),
            Some(json!("small")),
            "the earlier save stays"
        );
    }
}
