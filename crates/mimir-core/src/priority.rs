//! Work task priority: 1 (least urgent) to 10 (most urgent).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated priority in `1..=10`; 10 is the most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Priority(u8);

impl Priority {
    /// The least urgent priority, and the default for a submission.
    pub const MIN: Priority = Priority(1);
    /// The most urgent priority.
    pub const MAX: Priority = Priority(10);
    /// Number of distinct priority levels.
    pub const LEVELS: usize = 10;

    /// Builds a priority, or `None` when `value` is outside `1..=10`.
    pub fn new(value: i64) -> Option<Priority> {
        if (1..=10).contains(&value) {
            Some(Priority(value as u8))
        } else {
            None
        }
    }

    /// The numeric value, `1..=10`.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Zero-based level index, `0..10`.
    pub fn index(self) -> usize {
        usize::from(self.0 - 1)
    }

    /// Inverse of [`Priority::index`].
    pub fn from_index(index: usize) -> Priority {
        debug_assert!(index < Self::LEVELS);
        Priority(index as u8 + 1)
    }
}

/// A whole number from 1 to 10 in the OpenAPI document.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Priority {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(10))
            .description(Some("1 (least urgent) to 10 (most urgent)"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Priority {}

impl Default for Priority {
    fn default() -> Self {
        Priority::MIN
    }
}

impl TryFrom<i64> for Priority {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Priority::new(value)
            .ok_or_else(|| format!("priority must be between 1 and 10, got {value}"))
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_one_to_ten() {
        assert_eq!(Priority::new(0), None);
        assert_eq!(Priority::new(11), None);
        assert_eq!(Priority::new(1).map(Priority::get), Some(1));
        assert_eq!(Priority::new(10).map(Priority::get), Some(10));
        for i in 0..Priority::LEVELS {
            assert_eq!(Priority::from_index(i).index(), i);
        }
    }
}
