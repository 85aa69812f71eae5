//! Workers: the registry of who is connected and the local autoscaled pool.

pub mod backend;
pub mod idle_capacity;
mod pid_file;
pub mod pool;
pub mod registry;

pub use backend::{ClusterView, WorkerBackend};
pub use idle_capacity::IdleCapacity;
pub use registry::{Registration, Registry, WorkerView};
