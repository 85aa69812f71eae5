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
    /// `checkpoint.load`, `checkpoint.save`,
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

    /// The same registry with the `storage.*` actions (`storage.store`,
    /// `storage.retrieve`, `storage.update`, `storage.delete`,
    /// `storage.schema`), for processes where steps get storages through
    /// [`crate::RunContext::storages`] and for validating pipelines that run
    /// there.
    pub fn with_storage(mut self) -> Registry {
        for action in actions::storage() {
            self.register(action);
        }
        self
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

    /// Every action, sorted by `plugin.action`.
    pub fn actions(&self) -> Vec<Arc<dyn Action>> {
        self.actions.values().cloned().collect()
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
    use crate::{ActionError, ParamDoc, ParamType};
    use serde_json::{Map, Value, json};

    #[test]
    fn builtin_lists_every_action_sorted() {
        let registry = Registry::confined(&Confinement::default()).unwrap_or_default();
        assert_eq!(
            registry.names(),
            [
                "checkpoint.load",
                "checkpoint.save",
                "core.fail",
                "core.log",
                "core.sleep",
                "file.read",
                "file.write",
                "http.request",
                "transform.jq"
            ]
        );
        assert_eq!(
            registry.plugins(),
            ["checkpoint", "core", "file", "http", "transform"]
        );
        assert_eq!(registry.actions_of("file"), ["file.read", "file.write"]);
        assert!(registry.get("file", "read").is_some());
        assert!(registry.get("file", "delete").is_none());
    }

    fn object(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// A reference stands for any value at check time, so a parameter given
    /// as one is present without a type to check.
    fn reference() -> Value {
        json!("$.params.value")
    }

    fn wrong_literal(kind: ParamType) -> Option<Value> {
        match kind {
            ParamType::String => Some(json!(5)),
            ParamType::Integer => Some(json!("five")),
            ParamType::Boolean => Some(json!("yes")),
            ParamType::Object => Some(json!(["not", "an", "object"])),
            ParamType::Array => Some(json!({"not": "an array"})),
            ParamType::Any => None,
        }
    }

    fn refused_naming(action: &dyn Action, params: &Map<String, Value>, name: &str) {
        let id = format!("{}.{}", action.plugin(), action.action());
        match action.check(params) {
            Err(ActionError::Parameter { name: got, .. }) => {
                assert_eq!(got, name, "{id} with {params:?}");
            }
            other => panic!("{id} accepted or misreported {params:?}: {other:?}"),
        }
    }

    /// Every table says what the action's own `check` does: the required
    /// parameters are required, nothing else is accepted, and a literal of
    /// the wrong type is refused.
    #[test]
    fn every_action_doc_matches_what_its_check_accepts() {
        let registry = Registry::confined(&Confinement::default())
            .unwrap_or_default()
            .with_storage();
        assert!(registry.get("storage", "retrieve").is_some());
        assert!(!registry.actions().is_empty());
        for action in registry.actions() {
            let doc = action.doc();
            let id = format!("{}.{}", action.plugin(), action.action());
            assert!(!doc.summary.is_empty() && !doc.returns.is_empty(), "{id}");
            let required: Vec<&ParamDoc> = doc.parameters.iter().filter(|p| p.required).collect();
            let minimal = object(required.iter().map(|p| (p.name, reference())).collect());
            assert!(action.check(&minimal).is_ok(), "{id}: {minimal:?}");
            let mut full = minimal.clone();
            for param in doc.parameters {
                assert!(!param.description.is_empty(), "{id}.{}", param.name);
                assert!(
                    !(param.required && param.default.is_some()),
                    "{id}.{}: a required parameter has no default",
                    param.name
                );
                full.insert(param.name.to_string(), reference());
            }
            assert!(action.check(&full).is_ok(), "{id}: {full:?}");
            for param in &required {
                let mut without = minimal.clone();
                without.remove(param.name);
                refused_naming(action.as_ref(), &without, param.name);
            }
            let mut unknown = minimal.clone();
            unknown.insert("not_a_parameter".into(), json!(1));
            refused_naming(action.as_ref(), &unknown, "not_a_parameter");
            for param in doc.parameters {
                let Some(wrong) = wrong_literal(param.kind) else {
                    continue;
                };
                let mut bad = minimal.clone();
                bad.insert(param.name.to_string(), wrong);
                refused_naming(action.as_ref(), &bad, param.name);
            }
        }
    }
}
