//! `storage.store`: stores a CIR document in one of the project's storages.

use super::storage_common::{storage_error, storage_id, storages};
use crate::params::{literals, reject_unknown, require, required_string, string, wrong_type};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Stores a CIR document (an array `data` is a batch, all or none) in a storage config of the task's project.",
    parameters: &[
        ParamDoc::required(
            "storage_id",
            ParamType::String,
            "The storage config's id (POST /api/storage/configs).",
        ),
        ParamDoc::required(
            "cir_data",
            ParamType::Object,
            "The CIR document, e.g. a file.read step's result (\"$.read\"); its records are the objects of `data`.",
        ),
        ParamDoc::optional(
            "entity_type",
            ParamType::String,
            Some("cir_data.source.parameters.entity_type, else `default`"),
            "The entity type the records are stored as.",
        ),
    ],
    returns: "{success, affected_items} (the records stored)",
};

/// `storage.store`.
#[derive(Debug, Default)]
pub struct StorageStore;

#[async_trait]
impl Action for StorageStore {
    fn plugin(&self) -> &'static str {
        "storage"
    }

    fn action(&self) -> &'static str {
        "store"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "storage_id")?;
        require(params, "cir_data")?;
        let literal = literals(params);
        storage_id(&literal)?;
        if let Some(name) = string(&literal, "entity_type")? {
            mimir_storage::Name::new(name, "entity_type")
                .map_err(|e| ActionError::parameter("entity_type", e.message))?;
        }
        match literal.get("cir_data") {
            Some(document) if !document.is_object() => Err(wrong_type(
                "cir_data",
                "an object (a CIR document)",
                document,
            )),
            _ => Ok(()),
        }
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        self.check(&params)?;
        let id = required_string(&params, "storage_id")?;
        let mut document = params.get("cir_data").cloned().unwrap_or(Value::Null);
        if let Some(entity) = string(&params, "entity_type")? {
            let source = &mut document["source"];
            if !source.is_object() {
                *source = json!({});
            }
            let parameters = &mut source["parameters"];
            if !parameters.is_object() {
                *parameters = json!({});
            }
            parameters["entity_type"] = json!(entity);
        }
        let storage = storages(run)?.open(id).await?;
        let stored = storage
            .store_document(document)
            .await
            .map_err(storage_error)?;
        Ok(json!({"success": true, "affected_items": stored}))
    }
}
