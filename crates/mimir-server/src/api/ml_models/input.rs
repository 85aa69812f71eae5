//! The records an inference or a quality check reads: a storage config and
//! a CIRQuery, or records sent inline. Checked before anything is stored.

use super::project_storage;
use crate::AppState;
use crate::api::error::ApiError;
use crate::api::storage::errors::storage_error;
use mimir_core::{MlModel, StorageConfig};
use mimir_storage::{Query, QueryRequest};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Most records one request may send inline.
pub const MAX_INLINE_RECORDS: usize = 10_000;

/// Most records a quality check on the orchestrator scores.
pub const MAX_EVALUATE_RECORDS: u64 = 100_000;

/// `{"storage_id", "query"}` or `{"records": [...]}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    /// A storage config of the model's project to read records from.
    storage_id: Option<String>,
    /// A CIRQuery `{entity_type, filters, order_by}` choosing the records
    /// (no `limit`: every match is read, page by page).
    #[schema(value_type = Object)]
    query: Option<QueryRequest>,
    /// Up to 10,000 records, each a JSON object.
    #[schema(value_type = Vec<Object>)]
    records: Option<Vec<Value>>,
}

/// A checked [`ModelInput`].
pub enum CheckedInput {
    /// Records from a storage config.
    Storage {
        config: Box<StorageConfig>,
        query: QueryRequest,
    },
    /// Records sent inline.
    Records(Vec<Map<String, Value>>),
}

impl CheckedInput {
    /// As a task parameter: `{"storage_id", "query"}` or `{"records"}`.
    pub fn to_parameter(&self) -> Value {
        match self {
            CheckedInput::Storage { config, query } => serde_json::json!({
                "storage_id": config.id,
                "query": query,
            }),
            CheckedInput::Records(records) => serde_json::json!({ "records": records }),
        }
    }
}

/// Checks a CIRQuery for a model's input: its names and filters as a
/// retrieve checks them, and no `limit` or `offset` (every match is read).
pub(super) fn check_query(query: &QueryRequest, field: &str) -> Result<(), ApiError> {
    if query.limit.is_some() || query.offset.is_some() {
        return Err(ApiError::bad_field(
            "invalid_query",
            field,
            format!("{field} takes no limit or offset: every matching record is read"),
        ));
    }
    Query::check(query).map_err(|e| storage_error(e, field))?;
    Ok(())
}

/// Checks `input` for `model` (`field` is where it sits in the request).
pub(super) async fn check(
    state: &AppState,
    model: &MlModel,
    input: Option<ModelInput>,
    field: &str,
) -> Result<CheckedInput, ApiError> {
    let Some(input) = input else {
        return Err(ApiError::bad_field(
            "missing_field",
            field,
            format!("{field} is required: {{\"storage_id\", \"query\"}} or {{\"records\"}}"),
        ));
    };
    match (input.storage_id, input.records) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::bad_field(
            "invalid_input",
            field,
            format!("{field} takes either storage_id (and query) or records, not both or neither"),
        )),
        (None, Some(records)) => {
            if input.query.is_some() {
                return Err(ApiError::bad_field(
                    "invalid_input",
                    format!("{field}.query"),
                    "a query goes with storage_id, not with inline records",
                ));
            }
            if records.is_empty() || records.len() > MAX_INLINE_RECORDS {
                return Err(ApiError::bad_field(
                    "invalid_input",
                    format!("{field}.records"),
                    format!(
                        "{field}.records holds 1 to {MAX_INLINE_RECORDS} records, not {}",
                        records.len()
                    ),
                ));
            }
            let mut objects = Vec::with_capacity(records.len());
            for (i, record) in records.into_iter().enumerate() {
                match record {
                    Value::Object(map) => objects.push(map),
                    _ => {
                        return Err(ApiError::bad_field(
                            "invalid_input",
                            format!("{field}.records[{i}]"),
                            "each record is a JSON object",
                        ));
                    }
                }
            }
            Ok(CheckedInput::Records(objects))
        }
        (Some(storage_id), None) => {
            let config = project_storage(
                state,
                &model.project_id,
                &storage_id,
                &format!("{field}.storage_id"),
            )
            .await?;
            let query = input.query.unwrap_or_default();
            check_query(&query, &format!("{field}.query"))?;
            Ok(CheckedInput::Storage {
                config: Box::new(config),
                query,
            })
        }
    }
}

/// The records of `input`, read page by page through the storage
/// connectors, at most [`MAX_EVALUATE_RECORDS`] (more is refused: the check
/// runs in the orchestrator's memory).
pub(super) async fn read(
    state: &AppState,
    input: CheckedInput,
    field: &str,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let (config, query) = match input {
        CheckedInput::Records(records) => return Ok(records),
        CheckedInput::Storage { config, query } => (config, query),
    };
    let storage = state
        .storage
        .get(&config)
        .await
        .map_err(|e| storage_error(e, &format!("{field}.storage_id")))?;
    let page = mimir_storage::MAX_LIMIT;
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let mut request = query.clone();
        request.limit = Some(page);
        request.offset = Some(offset);
        let checked = Query::check(&request).map_err(|e| storage_error(e, field))?;
        let got = storage
            .retrieve(&checked)
            .await
            .map_err(|e| storage_error(e, &format!("{field}.query")))?;
        let n = got.len() as u64;
        records.extend(got);
        if records.len() as u64 > MAX_EVALUATE_RECORDS {
            return Err(ApiError::bad_field(
                "input_too_large",
                format!("{field}.query"),
                format!(
                    "the query matches more than {MAX_EVALUATE_RECORDS} records; narrow it with filters"
                ),
            ));
        }
        if n < page {
            return Ok(records);
        }
        offset += n;
    }
}
