//! Workers: the registry of who is connected and the local autoscaled pool.

mod pid_file;
pub mod pool;
pub mod registry;

pub use registry::{Registration, Registry, WorkerView};
