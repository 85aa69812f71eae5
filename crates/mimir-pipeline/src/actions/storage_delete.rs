//! `storage.delete`: removes the records a query selects.

use super::storage_common::{check_selection_params, query_request, storage_error, storages};
use crate::params::{boolean, reject_unknown, require, required_string};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Deletes the records a CIRQuery selects from a storage config of the task's project.",
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
        ParamDoc::optional(
            "all",
            ParamType::Boolean,
            Some("false"),
            "Must be true for a query without filters, which deletes every record of the entity type.",
        ),
    ],
    returns: "{success, affected_items} (the records deleted)",
};

/// `storage.delete`.
#[derive(Debug, Default)]
pub struct StorageDelete;

#[async_trait]
impl Action for StorageDelete {
    fn plugin(&self) -> &'static str {
        "storage"
    }

    fn action(&self) -> &'static str {
        "delete"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "storage_id")?;
        require(params, "query")?;
        check_selection_params(params)
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
        let storage = storages(run)?.open(id).await?;
        let deleted = storage.delete(&request, all).await.map_err(storage_error)?;
        Ok(json!({"success": true, "affected_items": deleted}))
    }
}
