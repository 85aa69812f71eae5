//! The Storage page's figures, read from the same metric families `/metrics`
//! serves (`mimir_storage_*`): per backend and operation the operations,
//! failures, records, retries and latency percentiles since start; pool use
//! per backend; and the health gauge of each storage config.
//!
//! The registry is read as exposition text rather than through the families
//! themselves: `prometheus-client` does not let its families be listed, and
//! the text is what Prometheus sees, so the page and Grafana agree.

use super::exposition_text::{quantile, sample};
use serde::Serialize;
use std::collections::BTreeMap;

/// One `(backend, operation)` pair's figures since the process started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperationFigures {
    /// Plugin type: `filesystem`, `postgresql`, `mysql`, `redis`, `s3`.
    pub backend: String,
    /// `store`, `retrieve`, `update`, `delete` or `create_schema`.
    pub operation: String,
    /// Operations finished (`mimir_storage_operations_total`).
    pub operations: f64,
    /// Of those, failed after their retries (`mimir_storage_errors_total`).
    pub errors: f64,
    /// Records moved (`mimir_storage_records_total`).
    pub records: f64,
    /// Transient failures retried (`mimir_storage_retries_total`).
    pub retries: f64,
    /// Seconds spent, retries included (the latency histogram's sum).
    pub seconds: f64,
    /// Latency percentiles in seconds, interpolated within their bucket as
    /// PromQL's `histogram_quantile` does; `None` before the first operation.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// The histogram's cumulative buckets `[upper bound, count]`, `+Inf` as
    /// `null`, so the page can take percentiles of a recent window from two
    /// readings.
    pub buckets: Vec<(Option<f64>, f64)>,
}

/// Connections of one backend's pools in this process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolFigures {
    /// Plugin type.
    pub backend: String,
    /// Open and waiting for work.
    pub idle: f64,
    /// Running an operation.
    pub in_use: f64,
    /// The most the pools may open (0: no pool open).
    pub max: f64,
}

/// The health gauge of one storage config (`mimir_storage_up`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthFigure {
    /// The storage config's id.
    pub storage_id: String,
    /// Plugin type.
    pub backend: String,
    /// Whether its last health check passed.
    pub up: bool,
}

/// Everything the metric families say about storage connectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageFigures {
    /// Pairs that did something (an operation or a retry), by backend then
    /// operation.
    pub operations: Vec<OperationFigures>,
    /// Backends with a pool open, or with connections in use.
    pub pools: Vec<PoolFigures>,
    /// Storage configs the health check has seen, by id.
    pub health: Vec<HealthFigure>,
}

/// Reads the storage families out of Prometheus exposition text.
pub fn read(text: &str) -> StorageFigures {
    let mut pairs: BTreeMap<(String, String), OperationFigures> = BTreeMap::new();
    let mut buckets: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    let mut pools: BTreeMap<String, PoolFigures> = BTreeMap::new();
    let mut health = Vec::new();
    for line in text.lines() {
        if !line.starts_with("mimir_storage_") {
            continue;
        }
        let Some(s) = sample(line) else { continue };
        let backend = s.label("backend").to_string();
        let key = (backend.clone(), s.label("operation").to_string());
        match s.name {
            "mimir_storage_operations_total"
            | "mimir_storage_errors_total"
            | "mimir_storage_records_total"
            | "mimir_storage_retries_total"
            | "mimir_storage_latency_seconds_sum" => {
                let entry = pairs
                    .entry(key.clone())
                    .or_insert_with(|| OperationFigures {
                        backend: key.0,
                        operation: key.1,
                        ..OperationFigures::default()
                    });
                match s.name {
                    "mimir_storage_operations_total" => entry.operations += s.value,
                    "mimir_storage_errors_total" => entry.errors += s.value,
                    "mimir_storage_records_total" => entry.records += s.value,
                    "mimir_storage_retries_total" => entry.retries += s.value,
                    _ => entry.seconds += s.value,
                }
            }
            "mimir_storage_latency_seconds_bucket" => {
                let bound = match s.label("le") {
                    "+Inf" => f64::INFINITY,
                    le => match le.parse() {
                        Ok(bound) => bound,
                        Err(_) => continue,
                    },
                };
                buckets.entry(key).or_default().push((bound, s.value));
            }
            "mimir_storage_pool_connections" | "mimir_storage_pool_connections_max" => {
                let pool = pools.entry(backend.clone()).or_insert_with(|| PoolFigures {
                    backend,
                    ..PoolFigures::default()
                });
                match (s.name, s.label("state")) {
                    ("mimir_storage_pool_connections_max", _) => pool.max += s.value,
                    (_, "idle") => pool.idle += s.value,
                    (_, "in_use") => pool.in_use += s.value,
                    _ => {}
                }
            }
            "mimir_storage_up" => health.push(HealthFigure {
                storage_id: s.label("storage_id").to_string(),
                backend,
                up: s.value >= 1.0,
            }),
            _ => {}
        }
    }
    let mut operations = Vec::new();
    for (key, mut figures) in pairs {
        if figures.operations <= 0.0 && figures.retries <= 0.0 {
            continue;
        }
        let mut cumulative = buckets.remove(&key).unwrap_or_default();
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        figures.p50 = quantile(0.5, &cumulative);
        figures.p95 = quantile(0.95, &cumulative);
        figures.p99 = quantile(0.99, &cumulative);
        figures.buckets = cumulative
            .into_iter()
            .map(|(bound, count)| (bound.is_finite().then_some(bound), count))
            .collect();
        operations.push(figures);
    }
    health.sort_by(|a: &HealthFigure, b| a.storage_id.cmp(&b.storage_id));
    StorageFigures {
        operations,
        pools: pools
            .into_values()
            .filter(|p| p.max > 0.0 || p.in_use > 0.0)
            .collect(),
        health,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP mimir_storage_operations_total Storage connector operations
# TYPE mimir_storage_operations_total counter
mimir_storage_operations_total{operation="store",backend="postgresql"} 4
mimir_storage_operations_total{operation="retrieve",backend="postgresql"} 0
mimir_storage_operations_total{operation="store",backend="redis"} 0
mimir_storage_errors_total{operation="store",backend="postgresql"} 1
mimir_storage_records_total{operation="store",backend="postgresql"} 4000
mimir_storage_retries_total{operation="retrieve",backend="postgresql"} 2
mimir_storage_latency_seconds_sum{operation="store",backend="postgresql"} 0.2
mimir_storage_latency_seconds_count{operation="store",backend="postgresql"} 4
mimir_storage_latency_seconds_bucket{le="0.01",operation="store",backend="postgresql"} 0
mimir_storage_latency_seconds_bucket{le="0.1",operation="store",backend="postgresql"} 4
mimir_storage_latency_seconds_bucket{le="+Inf",operation="store",backend="postgresql"} 4
mimir_storage_pool_connections{backend="postgresql",state="idle"} 3
mimir_storage_pool_connections{backend="postgresql",state="in_use"} 2
mimir_storage_pool_connections_max{backend="postgresql"} 10
mimir_storage_pool_connections{backend="mysql",state="idle"} 0
mimir_storage_pool_connections{backend="mysql",state="in_use"} 0
mimir_storage_pool_connections_max{backend="mysql"} 0
mimir_storage_up{storage_id="b \"quoted\" \\ id",backend="redis"} 0
mimir_storage_up{storage_id="a",backend="postgresql"} 1
mimir_store_errors_total{method="submit",backend="sqlite"} 7
"#;

    #[test]
    fn pairs_that_did_something_are_listed_with_their_percentiles() {
        let figures = read(TEXT);
        let pairs: Vec<(&str, &str)> = figures
            .operations
            .iter()
            .map(|f| (f.backend.as_str(), f.operation.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("postgresql", "retrieve"), ("postgresql", "store")],
            "idle pairs are left out; a pair that only retried is kept"
        );
        let store = &figures.operations[1];
        assert_eq!(
            (store.operations, store.errors, store.records, store.seconds),
            (4.0, 1.0, 4000.0, 0.2)
        );
        // Every observation in (0.01, 0.1]: the median is halfway.
        assert!((store.p50.expect("p50") - 0.055).abs() < 1e-9);
        assert!((store.p99.expect("p99") - 0.0991).abs() < 1e-9);
        assert_eq!(store.buckets.last(), Some(&(None, 4.0)));
        assert_eq!(figures.operations[0].p50, None, "no latency observed");
    }

    #[test]
    fn pools_without_connections_are_left_out_and_health_keeps_escaped_ids() {
        let figures = read(TEXT);
        assert_eq!(
            figures.pools,
            [PoolFigures {
                backend: "postgresql".into(),
                idle: 3.0,
                in_use: 2.0,
                max: 10.0
            }]
        );
        assert_eq!(
            figures.health,
            [
                HealthFigure {
                    storage_id: "a".into(),
                    backend: "postgresql".into(),
                    up: true
                },
                HealthFigure {
                    storage_id: "b \"quoted\" \\ id".into(),
                    backend: "redis".into(),
                    up: false
                },
            ]
        );
    }

    #[test]
    fn quantiles_follow_histogram_quantile() {
        assert_eq!(quantile(0.5, &[]), None);
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        // Ranks in +Inf answer the highest finite bound.
        assert_eq!(
            quantile(0.99, &[(1.0, 1.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
        assert_eq!(
            quantile(0.5, &[(1.0, 0.0), (2.0, 10.0), (f64::INFINITY, 10.0)]),
            Some(1.5)
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(sample("mimir_storage_up{storage_id=\"x} 1").is_none());
        assert!(sample("mimir_storage_up{storage_id=\"x\"} one").is_none());
        assert!(sample("# TYPE x gauge").is_none());
        let s = sample("mimir_storage_up{storage_id=\"a,b\",backend=\"s3\"} 1").expect("parses");
        assert_eq!(s.label("storage_id"), "a,b");
        assert_eq!(s.label("backend"), "s3");
    }
}
