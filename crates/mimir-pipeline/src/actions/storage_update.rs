//! `storage.update`: sets attributes on the records a query selects.

use super::storage_common::{check_selection_params, query_request, storage_error, storages};
use crate::params::{boolean, reject_unknown, require, required_string, wrong_type};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Sets attributes on the records a CIRQuery selects in a storage config of the task's project.",
    parameters: &[
        ParamDoc::required(
            "storage_id",
            ParamType::String,
            "The storage config's id (POST /api/storage/configs).",
        ),
        ParamDoc::required(
            "query",
            ParamType::Object,
            "Which records: {entity_type, filters: [{attribute, operator, value}]} (no order_by, limit or offset).",
        ),
        ParamDoc::required(
            "updates",
            ParamType::Object,
            "The attributes to set and their values: {attribute: value}.",
        ),
        ParamDoc::optional(
            "all",
            ParamType::Boolean,
            Some("false"),
            "Must be true for a query without filters, which changes every record of the entity type.",
        ),
    ],
    returns: "{success, affected_items} (the records changed)",
};

/// `storage.update`.
#[derive(Debug, Default)]
pub struct StorageUpdate;

#[async_trait]
impl Action for StorageUpdate {
    fn plugin(&self) -> &'static str {
        "storage"
    }

    fn action(&self) -> &'static str {
        "update"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "storage_id")?;
        require(params, "query")?;
        require(params, "updates")?;
        check_selection_params(params)?;
        match crate::params::literals(params).get("updates") {
            Some(Value::Object(updates)) if updates.is_empty() => Err(ActionError::parameter(
                "updates",
                "is empty: name the attributes to set",
            )),
            Some(Value::Object(updates)) => {
                for name in updates.keys() {
                    mimir_storage::Name::new(name, "updates attribute")
                        .map_err(|e| ActionError::parameter("updates", e.message))?;
                }
                Ok(())
            }
            Some(other) => Err(wrong_type("updates", "an object", other)),
            None => Ok(()),
        }
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        self.check(&params)?;
        let id = required_string(&params, "storage_id")?;
        let request = query_request(&params, "query")?.unwrap_or_default();
        let all = boolean(&params, "all")?.unwrap_or(false);
        let Some(Value::Object(updates)) = params.get("updates") else {
            return Err(ActionError::parameter("updates", "is required"));
        };
        let storage = storages(run)?.open(id).await?;
        let changed = storage
            .update(&request, updates, all)
            .await
            .map_err(storage_error)?;
        Ok(json!({"success": true, "affected_items": changed}))
    }
}
