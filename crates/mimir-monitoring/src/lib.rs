//! The Mimir AIP monitoring stack, versioned with the binary: Prometheus
//! configuration, alert and recording rules with their unit tests, Grafana
//! provisioning and dashboards, Loki and Tempo configurations and a Docker
//! Compose file, all kept as files under `deploy/monitoring/` and embedded
//! here, so what `mimir-aip metrics install` writes is exactly what is tested.
//!
//! - [`agent`]: the per-host alternative, a Prometheus in agent mode that
//!   scrapes one host's workers and remote-writes to a central Prometheus;
//! - [`assets`]: the embedded files and the rendering of the per-install ones
//!   (`prometheus.yml`, worker targets, scrape credentials);
//! - [`install`]: writing them idempotently, never over a file the user
//!   changed unless forced;
//! - [`tools`] and [`view`]: finding Prometheus, Grafana, Loki and Tempo and
//!   running them on loopback against an installed directory.

pub mod agent;
pub mod assets;
mod error;
pub mod install;
mod manifest;
pub mod tools;
pub mod view;

pub use agent::AgentSettings;
pub use assets::{ScrapeAuth, ScrapeTls, Settings};
pub use error::MonitoringError;
pub use install::{Outcome, Status, install, install_agent};
pub use manifest::MANIFEST_FILE;
