//! The set of actions pipelines may use.

use crate::Action;
use crate::actions;
use crate::confinement::{Confinement, ConfinementError};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Actions by `plugin.action` name.
#[derive(Clone, Default)]
pub struct Registry {
    actions: BTreeMap<(String, String), Arc<dyn Action>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A registry with every built-in action: `http.request`, `file.read`,
    /// `file.write`, `transform.jq`, `core.log`, `core.sleep`, `core.fail`,
    /// the file and HTTP actions confined by `confinement`.
    ///
    /// This is the only way to get the built-in actions: there is no
    /// unconfined registry. `Confinement::default()` reaches no file at all.
    pub fn confined(confinement: &Confinement) -> Result<Registry, ConfinementError> {
        let mut registry = Registry::new();
        for action in actions::builtin(confinement)? {
            registry.register(action);
        }
        Ok(registry)
    }

    /// Adds `action`, replacing any action registered under the same name.
    pub fn register(&mut self, action: Arc<dyn Action>) {
        let key = (action.plugin().to_string(), action.action().to_string());
        self.actions.insert(key, action);
    }

    /// The action `plugin.action`, if registered.
    pub fn get(&self, plugin: &str, action: &str) -> Option<Arc<dyn Action>> {
        self.actions
            .get(&(plugin.to_string(), action.to_string()))
            .cloned()
    }

    /// Every `plugin.action` name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.actions
            .keys()
            .map(|(plugin, action)| format!("{plugin}.{action}"))
            .collect()
    }

    /// Every plugin name, sorted, without repeats.
    pub fn plugins(&self) -> Vec<String> {
        let mut plugins: Vec<String> = self.actions.keys().map(|(p, _)| p.clone()).collect();
        plugins.dedup();
        plugins
    }

    /// The `plugin.action` names of one plugin, sorted; empty if unknown.
    pub fn actions_of(&self, plugin: &str) -> Vec<String> {
        self.actions
            .keys()
            .filter(|(p, _)| p == plugin)
            .map(|(p, a)| format!("{p}.{a}"))
            .collect()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("actions", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lists_every_action_sorted() {
        let registry = Registry::confined(&Confinement::default()).unwrap_or_default();
        assert_eq!(
            registry.names(),
            [
                "core.fail",
                "core.log",
                "core.sleep",
                "file.read",
                "file.write",
                "http.request",
                "transform.jq"
            ]
        );
        assert_eq!(registry.plugins(), ["core", "file", "http", "transform"]);
        assert_eq!(registry.actions_of("file"), ["file.read", "file.write"]);
        assert!(registry.get("file", "read").is_some());
        assert!(registry.get("file", "delete").is_none());
    }
}
