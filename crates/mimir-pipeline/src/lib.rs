//! The Mimir AIP pipeline engine and its built-in actions.
//!
//! A pipeline is a list of [`Step`]s. [`validate()`] checks one when it is
//! created or updated; [`Engine::run`] runs it for a `pipeline_execution`
//! work task and returns an [`Execution`] whose [`Execution::result_json`] is
//! the task's `result`. Nothing here stores pipelines or serves HTTP.
//!
//! # Steps, references and the context
//!
//! Steps run in order. Before a step runs, every string in its parameters
//! (at any depth) that is entirely a reference is replaced:
//!
//! | reference | value |
//! | --- | --- |
//! | `$.params` | the execution's whole parameters object |
//! | `$.params.key.sub` | a value inside the parameters |
//! | `$.step` | the context entry of the earlier step `step` |
//! | `$.step.key` | `entry.key`; a decimal key also indexes arrays (`$.step.rows.0`) |
//!
//! Other strings stay as they are; a reference to a missing key fails the
//! step, naming the reference and the part that is missing. The action's
//! result R becomes the step's context entry, or, with
//! `"output": {"data": "$.result", "n": "$.result.count"}`, the entry is
//! `{"data": R, "n": R.count}`. After each step the context, serialized as
//! compact JSON, must stay within the cap ([`DEFAULT_CONTEXT_CAP_BYTES`],
//! see [`Engine::with_context_cap`]). The first failing step stops the run;
//! the steps after it are recorded as skipped.
//!
//! # Conditions, loops and checkpoints
//!
//! `"when": "<jq>"` on a step runs a jq program over the context object
//! `{"params": ..., "<earlier step>": entry, ..., "<as>": item}`; the step
//! runs only when the first output is neither `false` nor `null`, else it is
//! recorded as skipped (its record's `error` says why, e.g. `when was
//! false`) and has no entry. A program that fails fails the step.
//!
//! A step `{"name", "for_each": {"items": "$.ref", "as": "item",
//! "concurrency": 1, "continue_on_error": false, "steps": [...]}}` runs its
//! inner steps once per item of the array `items` ([`ForEach`]), at most
//! `concurrency` items at once; its entry is the array of each item's inner
//! entries, in item order. Only top-level steps have records.
//!
//! `checkpoint.load` and `checkpoint.save` read and stage the pipeline's
//! durable bookmarks ([`Checkpoints`], through [`RunContext::checkpoints`]);
//! the saves of a run that succeeded come back in
//! [`Execution::checkpoints`] and in the result as `"checkpoints"`.
//!
//! # Built-in actions
//!
//! `http.request` ([`actions::HttpRequest`]), `file.read`
//! ([`actions::FileRead`]), `file.write` ([`actions::FileWrite`]),
//! `transform.jq` ([`actions::TransformJq`]), `core.log`
//! ([`actions::CoreLog`]), `core.sleep` ([`actions::CoreSleep`]) and
//! `core.fail` ([`actions::CoreFail`]), `checkpoint.load`
//! ([`actions::CheckpointLoad`]) and `checkpoint.save`
//! ([`actions::CheckpointSave`]); [`Registry::confined`] has them all,
//! with the file and HTTP actions confined to what a [`Confinement`] allows:
//! file roots, and hosts allowed and denied (see [`confinement`]).
//!
//! # Adding a plugin
//!
//! An action is one type implementing [`Action`], usually in one file under
//! `src/actions/` and listed in `actions::builtin()`; code outside this crate
//! registers its own with [`Registry::register`]. `check` runs at validation
//! time on unresolved parameters, `run` at run time on resolved ones; the
//! [`params`] helpers give errors that name the parameter.
//!
//! ```
//! use async_trait::async_trait;
//! use mimir_pipeline::{params, Action, ActionDoc, ActionError, Confinement, Engine, ParamDoc, ParamType, Registry, RunContext, Step};
//! use serde_json::{json, Map, Value};
//! use std::sync::Arc;
//!
//! /// `text.upper`: upper-cases `text`.
//! struct Upper;
//!
//! #[async_trait]
//! impl Action for Upper {
//!     fn plugin(&self) -> &'static str { "text" }
//!     fn action(&self) -> &'static str { "upper" }
//!
//!     fn doc(&self) -> &'static ActionDoc {
//!         const DOC: ActionDoc = ActionDoc {
//!             summary: "Upper-cases a text.",
//!             parameters: &[ParamDoc::required("text", ParamType::String, "The text.")],
//!             returns: "{text}",
//!         };
//!         &DOC
//!     }
//!
//!     fn check(&self, p: &Map<String, Value>) -> Result<(), ActionError> {
//!         params::reject_unknown(p, self.doc().parameters)?;
//!         params::require(p, "text")?;
//!         // `text` may be a reference, resolved only at run time.
//!         params::string(&params::literals(p), "text")?;
//!         Ok(())
//!     }
//!
//!     async fn run(&self, p: Map<String, Value>, _run: &RunContext) -> Result<Value, ActionError> {
//!         let text = params::required_string(&p, "text")?;
//!         Ok(json!({ "text": text.to_uppercase() }))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut registry = Registry::confined(&Confinement::default()).unwrap();
//! registry.register(Arc::new(Upper));
//! let steps: Vec<Step> = serde_json::from_value(json!([
//!     {"name": "shout", "plugin": "text", "action": "upper",
//!      "parameters": {"text": "$.params.greeting"}},
//!     {"name": "say", "plugin": "core", "action": "log",
//!      "parameters": {"message": "$.shout.text"}}
//! ])).unwrap();
//! mimir_pipeline::validate(&steps, &registry).unwrap();
//!
//! let engine = Engine::new(Arc::new(registry));
//! let params = json!({"greeting": "hello"}).as_object().cloned().unwrap();
//! let run = RunContext::new("task-1", "pipeline-1");
//! let execution = engine.run(&steps, &params, &run, &mut |_record| {}).await;
//! assert!(execution.succeeded());
//! assert_eq!(execution.context["shout"], json!({"text": "HELLO"}));
//! # }
//! ```

pub mod action;
pub mod action_doc;
pub mod actions;
pub mod checkpoints;
pub mod cir;
pub mod confinement;
mod context;
pub mod engine;
pub mod error;
pub mod jq;
pub mod params;
pub mod record;
pub mod reference;
pub mod registry;
mod resolve;
pub mod run_context;
pub mod step;
pub mod step_error;
pub mod storages;
pub mod validate;

pub use action::Action;
pub use action_doc::{ActionDoc, ParamDoc, ParamType};
pub use checkpoints::Checkpoints;
pub use confinement::{Confinement, ConfinementError, HttpPolicy};
pub use context::{DEFAULT_CONTEXT_CAP_BYTES, human_bytes};
pub use engine::{Engine, Watcher};
pub use error::ActionError;
pub use mimir_core::ErrorClass;
pub use record::{Execution, StepRecord, StepStatus};
pub use reference::{Reference, is_reference, referenced_params, required_params};
pub use registry::Registry;
pub use run_context::RunContext;
pub use step::{ForEach, Step};
pub use step_error::StepError;
pub use storages::Storages;
pub use tokio_util::sync::CancellationToken;
pub use validate::{InvalidPipeline, validate};
