//! The plugin interface: one [`Action`] per `plugin.action` name.

use crate::{ActionDoc, ActionError, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// An action a pipeline step can run, such as `file.read`.
///
/// Implementations are stateless or hold shared clients (an HTTP client);
/// the engine calls [`Action::run`] once per step, with the step's parameters
/// already resolved. See the crate documentation for a complete example.
#[async_trait]
pub trait Action: Send + Sync {
    /// The plugin name, e.g. `file`.
    fn plugin(&self) -> &'static str;

    /// The action name within the plugin, e.g. `read`.
    fn action(&self) -> &'static str;

    /// What it does, its parameters and what it returns. `check` must refuse
    /// any parameter not listed, a required one left out and a literal of the
    /// wrong type; the registry's tests hold every built-in action to that.
    fn doc(&self) -> &'static ActionDoc;

    /// Checks the parameters when a pipeline is created or updated, so that
    /// mistakes surface before anything runs.
    ///
    /// References are not resolved yet: skip type checks on values for which
    /// [`crate::is_reference`] is true. Only do cheap, side-effect-free work
    /// here. A [`ActionError::Parameter`] error lets the caller name the
    /// offending field. The default accepts everything.
    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        let _ = params;
        Ok(())
    }

    /// Runs the action with resolved parameters and returns its result R.
    ///
    /// Long waits should end promptly when `run.cancel` fires, returning
    /// [`ActionError::Cancelled`]; the engine abandons the future anyway, but
    /// an action used outside the engine has only its own check. Blocking or
    /// CPU-heavy work belongs in `tokio::task::spawn_blocking`.
    async fn run(&self, params: Map<String, Value>, run: &RunContext)
    -> Result<Value, ActionError>;
}
