//! The orchestrator's telemetry: task events to logs and metrics, store and
//! HTTP measurements, the `/metrics` endpoint and trace spans of the task path.

pub mod http_metrics;
pub mod metered_store;
pub mod rates;
pub mod scrape;
pub mod spans;
pub mod storage_up;
pub mod task_events;

pub use metered_store::MeteredStore;
pub use scrape::{ScrapeAuth, WorkerCollector};
pub use task_events::TaskEventRecorder;
