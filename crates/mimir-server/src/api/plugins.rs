//! `GET /api/plugins`: every plugin and action pipelines may use, with the
//! parameters each takes and what it returns, from the actions' own tables.

use super::error::ApiError;
use super::extract::ApiQuery;
use crate::AppState;
use axum::Json;
use axum::extract::State;
use mimir_pipeline::ActionDoc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answer of `GET /api/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Plugins by name, sorted.
    pub plugins: Vec<Plugin>,
}

/// One plugin and its actions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plugin {
    /// The name steps give as `plugin`, e.g. `file`.
    pub name: String,
    /// Its actions, sorted by name.
    pub actions: Vec<PluginAction>,
}

/// One action: its name, what it takes and what it returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginAction {
    /// The name steps give as `action`, e.g. `read`.
    pub name: String,
    /// `plugin.action`, e.g. `file.read`.
    pub id: String,
    /// What it does, its parameters and what it returns.
    #[serde(flatten)]
    pub doc: ActionDoc,
}

/// Query of `GET /api/plugins`: none, and an unknown parameter is refused as
/// everywhere else.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PluginQuery {}

/// `GET /api/plugins`.
#[utoipa::path(
    get,
    path = "/api/plugins",
    operation_id = "list_plugins",
    tag = "pipelines",
    params(PluginQuery),
    responses((status = 200, description = "Every plugin and action", body = PluginList))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(_query): ApiQuery<PluginQuery>,
) -> Result<Json<PluginList>, ApiError> {
    Ok(Json(list_of(&state.plugins)))
}

/// The registry's actions grouped by plugin.
pub fn list_of(registry: &mimir_pipeline::Registry) -> PluginList {
    let mut plugins: Vec<Plugin> = Vec::new();
    for action in registry.actions() {
        let entry = PluginAction {
            name: action.action().to_string(),
            id: format!("{}.{}", action.plugin(), action.action()),
            doc: *action.doc(),
        };
        match plugins.last_mut() {
            Some(plugin) if plugin.name == action.plugin() => plugin.actions.push(entry),
            _ => plugins.push(Plugin {
                name: action.plugin().to_string(),
                actions: vec![entry],
            }),
        }
    }
    PluginList { plugins }
}
