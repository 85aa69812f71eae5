//! `storage.schema`: creates an entity type from its definition.

use super::storage_common::{storage_error, storage_id, storages};
use crate::params::{literals, reject_unknown, require, required_string, wrong_type};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use mimir_storage::EntitySchema;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Creates an entity type (typed attributes, the indexes filters use) in a storage config of the task's project.",
    parameters: &[
        ParamDoc::required(
            "storage_id",
            ParamType::String,
            "The storage config's id (POST /api/storage/configs).",
        ),
        ParamDoc::required(
            "schema",
            ParamType::Object,
            "The definition: {name, attributes: [{name, type, indexed, required}]}.",
        ),
    ],
    returns: "{success, entity_type}",
};

/// `storage.schema`.
#[derive(Debug, Default)]
pub struct StorageSchema;

fn schema(params: &Map<String, Value>) -> Result<Option<EntitySchema>, ActionError> {
    let Some(value) = params.get("schema") else {
        return Ok(None);
    };
    if !value.is_object() {
        return Err(wrong_type(
            "schema",
            "an object (an entity definition)",
            value,
        ));
    }
    let schema: EntitySchema = serde_json::from_value(value.clone()).map_err(|e| {
        ActionError::parameter("schema", format!("is not an entity definition: {e}"))
    })?;
    schema
        .check()
        .map_err(|e| ActionError::parameter("schema", e.message))?;
    Ok(Some(schema))
}

#[async_trait]
impl Action for StorageSchema {
    fn plugin(&self) -> &'static str {
        "storage"
    }

    fn action(&self) -> &'static str {
        "schema"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "storage_id")?;
        require(params, "schema")?;
        let literal = literals(params);
        storage_id(&literal)?;
        schema(&literal)?;
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        self.check(&params)?;
        let id = required_string(&params, "storage_id")?;
        let Some(schema) = schema(&params)? else {
            return Err(ActionError::parameter("schema", "is required"));
        };
        let storage = storages(run)?.open(id).await?;
        storage
            .create_schema(&schema)
            .await
            .map_err(storage_error)?;
        Ok(json!({"success": true, "entity_type": schema.name.as_str()}))
    }
}
