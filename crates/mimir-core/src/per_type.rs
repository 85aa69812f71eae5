//! One value per work task type, in an array indexed by the type itself.
//!
//! The array's length is [`WorkTaskType::COUNT`] and every type's index is
//! below it by construction, so a lookup cannot go out of range and a new type
//! gets its slot everywhere without a change here.

use crate::WorkTaskType;
use std::ops::{Index, IndexMut};

/// A `T` for each [`WorkTaskType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerType<T>([T; WorkTaskType::COUNT]);

impl<T> PerType<T> {
    /// Each type's value from `make`.
    pub fn from_fn(make: impl FnMut(WorkTaskType) -> T) -> PerType<T> {
        PerType(WorkTaskType::ALL.map(make))
    }

    /// Every type with its value, in [`WorkTaskType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (WorkTaskType, &T)> {
        WorkTaskType::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T: Default> Default for PerType<T> {
    fn default() -> PerType<T> {
        PerType::from_fn(|_| T::default())
    }
}

impl<T> Index<WorkTaskType> for PerType<T> {
    type Output = T;
    fn index(&self, t: WorkTaskType) -> &T {
        &self.0[t.index()]
    }
}

impl<T> IndexMut<WorkTaskType> for PerType<T> {
    fn index_mut(&mut self, t: WorkTaskType) -> &mut T {
        &mut self.0[t.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_has_its_own_slot() {
        let mut per = PerType::<usize>::default();
        for (n, t) in WorkTaskType::ALL.into_iter().enumerate() {
            per[t] += n + 1;
        }
        for (n, t) in WorkTaskType::ALL.into_iter().enumerate() {
            assert_eq!(per[t], n + 1, "{t}");
        }
        let listed: Vec<_> = per.iter().map(|(t, v)| (t, *v)).collect();
        assert_eq!(listed.len(), WorkTaskType::COUNT);
    }

    #[test]
    fn indices_follow_all() {
        for (i, t) in WorkTaskType::ALL.into_iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
