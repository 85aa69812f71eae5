//! Workers: the registry of who is connected and the local autoscaled pool.

pub mod pool;
pub mod registry;

pub use registry::{Registration, Registry, WorkerView};
