//! The Mimir AIP orchestrator: configuration, the HTTP API and serving it.
//!
//! [`api::app`] builds the router from an [`AppState`], so tests drive it
//! in-process; [`serve::run`] opens the store and serves it on a socket.

pub mod api;
pub mod config;
pub mod dashboard;
pub mod kubernetes;
pub mod leadership;
pub mod listener;
pub mod ml;
pub mod progress;
pub mod requirements;
pub mod schedules;
pub mod serve;
mod state;
pub mod store_choice;
pub mod telemetry;
pub mod workers;

pub use config::Config;
pub use state::AppState;
