//! What the `storage.*` actions share: reaching the run's storages, reading
//! `storage_id` and `query`, and turning connector errors into step errors.

use crate::params::{literals, string, wrong_type};
use crate::{ActionError, RunContext, Storages};
use mimir_storage::{ErrorKind, Query, QueryRequest, Selection, StorageError};
use serde_json::{Map, Value};

/// A connector error as a step error: a bad request or config fails the
/// same way every time; an unreachable or slow backend may not.
pub(crate) fn storage_error(error: StorageError) -> ActionError {
    match error.kind {
        ErrorKind::Invalid | ErrorKind::Config => ActionError::Permanent(error.message),
        ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Backend => {
            ActionError::Failed(error.message)
        }
    }
}

/// The run's storages, or why there are none.
pub(crate) fn storages(run: &RunContext) -> Result<&Storages, ActionError> {
    run.storages.as_deref().ok_or_else(|| {
        ActionError::Permanent(
            "storage steps run only in workers, which receive their project's storage configs"
                .into(),
        )
    })
}

/// `storage_id`: a non-empty string.
pub(crate) fn storage_id(params: &Map<String, Value>) -> Result<Option<&str>, ActionError> {
    match string(params, "storage_id")? {
        Some("") => Err(ActionError::parameter(
            "storage_id",
            "is empty: name a storage config of the project",
        )),
        other => Ok(other),
    }
}

/// The query parameter `name` (a CIRQuery object), if given.
pub(crate) fn query_request(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Option<QueryRequest>, ActionError> {
    let Some(value) = params.get(name) else {
        return Ok(None);
    };
    if !value.is_object() {
        return Err(wrong_type(name, "an object (a CIRQuery)", value));
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| ActionError::parameter(name, format!("is not a CIRQuery: {e}")))
}

/// Checks a retrieve's `query` literal.
pub(crate) fn checked_query(request: &QueryRequest) -> Result<Query, ActionError> {
    Query::check(request).map_err(|e| ActionError::parameter("query", e.message))
}

/// Checks an update's or delete's `query` literal; no filters need `all`.
pub(crate) fn checked_selection(
    request: &QueryRequest,
    all: bool,
) -> Result<Selection, ActionError> {
    Selection::check(request, all).map_err(|e| ActionError::parameter("query", e.message))
}

/// The checks `storage.update` and `storage.delete` share at validation
/// time: `storage_id`, and a literal `query` that the run will take (an
/// `all` given as a reference may turn out true, so it is assumed so).
pub(crate) fn check_selection_params(params: &Map<String, Value>) -> Result<(), ActionError> {
    let literal = literals(params);
    storage_id(&literal)?;
    let all = crate::params::boolean(&literal, "all")?;
    let all = all.unwrap_or(params.contains_key("all"));
    if let Some(request) = query_request(&literal, "query")? {
        checked_selection(&request, all)?;
    }
    Ok(())
}
