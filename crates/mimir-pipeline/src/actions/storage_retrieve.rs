//! `storage.retrieve`: reads records from one of the project's storages,
//! or answers a reference to them that a later step or an ML task reads.

use super::storage_common::{checked_query, query_request, storage_error, storage_id, storages};
use crate::params::{literals, reject_unknown, require, required_string, string};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Retrieves the records a CIRQuery selects from a storage config of the task's project, or a reference to them.",
    parameters: &[
        ParamDoc::required(
            "storage_id",
            ParamType::String,
            "The storage config's id (POST /api/storage/configs).",
        ),
        ParamDoc::optional(
            "query",
            ParamType::Object,
            Some("the first 1000 records of entity type `default`"),
            "A CIRQuery: {entity_type, filters: [{attribute, operator (eq neq gt gte lt lte in like), value}], order_by: [{attribute, direction}], limit (at most 10000), offset}.",
        ),
        ParamDoc::optional(
            "as",
            ParamType::String,
            Some("records"),
            "`records`: the records themselves, in the pipeline context (which is capped, 10 MiB by default). `reference`: {storage_id, query, entity_type, backend} without reading anything, for data too large for the context: a later storage.retrieve (\"storage_id\": \"$.step.storage_id\", \"query\": \"$.step.query\") or an ML task's input reads it.",
        ),
    ],
    returns: "`records`: a CIR document, `data` the array of records, metadata.record_count their number (and offset, limit). `reference`: {storage_id, query, entity_type, backend}",
};

/// `storage.retrieve`.
#[derive(Debug, Default)]
pub struct StorageRetrieve;

/// What `as` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Records,
    Reference,
}

fn answer(params: &Map<String, Value>) -> Result<Answer, ActionError> {
    match string(params, "as")? {
        None | Some("records") => Ok(Answer::Records),
        Some("reference") => Ok(Answer::Reference),
        Some(other) => Err(ActionError::parameter(
            "as",
            format!("must be records or reference, got {other:?}"),
        )),
    }
}

#[async_trait]
impl Action for StorageRetrieve {
    fn plugin(&self) -> &'static str {
        "storage"
    }

    fn action(&self) -> &'static str {
        "retrieve"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "storage_id")?;
        let literal = literals(params);
        storage_id(&literal)?;
        answer(&literal)?;
        if let Some(request) = query_request(&literal, "query")? {
            checked_query(&request)?;
        }
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        self.check(&params)?;
        let id = required_string(&params, "storage_id")?;
        let request = query_request(&params, "query")?.unwrap_or_default();
        let query = checked_query(&request)?;
        let storage = storages(run)?.open(id).await?;
        let entity = query.selection.entity_type.clone();
        if answer(&params)? == Answer::Reference {
            return Ok(json!({
                "storage_id": id,
                "query": request,
                "entity_type": entity.as_str(),
                "backend": storage.plugin_type().as_str(),
            }));
        }
        let records = storage.retrieve(&query).await.map_err(storage_error)?;
        let count = records.len();
        let data: Vec<Value> = records.into_iter().map(Value::Object).collect();
        Ok(json!({
            "version": crate::cir::CIR_VERSION,
            "source": {
                "type": "database",
                "uri": format!("storage://{id}/{entity}"),
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "format": "json",
                "parameters": {
                    "storage_id": id,
                    "entity_type": entity.as_str(),
                    "storage_type": storage.plugin_type().as_str(),
                },
            },
            "data": data,
            "metadata": {"record_count": count, "offset": query.offset, "limit": query.limit},
        }))
    }
}
