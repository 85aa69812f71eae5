//! What an inference run reports for the metrics: how many items it predicted
//! and each batch's size and time. The orchestrator reads it from a finished
//! `ml_inference` task's result, the worker from its own run; both record it
//! with [`crate::Metrics::record_inference`], so the two `/metrics` agree.

use serde_json::Value;

/// Most batches one summary keeps: a result is worker input, and each batch
/// is two histogram observations.
pub const MAX_BATCHES: usize = 100_000;

/// Items predicted and the batches they went in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InferenceSummary {
    /// Items predicted.
    pub items: u64,
    /// `(size, seconds)` of each batch, in order.
    pub batches: Vec<(u64, f64)>,
}

impl InferenceSummary {
    /// The summary in an inference result (`{"items": n, "batches": [[size,
    /// seconds], …], …}`), or `None` when `items` is missing. Malformed or
    /// negative batches are skipped, and at most [`MAX_BATCHES`] are kept.
    pub fn from_result(result: &Value) -> Option<InferenceSummary> {
        let items = result.get("items")?.as_u64()?;
        let mut batches = Vec::new();
        if let Some(listed) = result.get("batches").and_then(Value::as_array) {
            for batch in listed.iter().take(MAX_BATCHES) {
                let Some([size, seconds]) = batch.as_array().map(Vec::as_slice) else {
                    continue;
                };
                let (Some(size), Some(seconds)) = (size.as_u64(), seconds.as_f64()) else {
                    continue;
                };
                if seconds.is_finite() && seconds >= 0.0 {
                    batches.push((size, seconds));
                }
            }
        }
        Some(InferenceSummary { items, batches })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_items_and_batches_and_skips_malformed_ones() {
        let result = json!({
            "items": 5,
            "batches": [[3, 0.5], [2, 0.25], ["x", 1], [1, -1.0], [4]],
        });
        let summary = InferenceSummary::from_result(&result).unwrap();
        assert_eq!(summary.items, 5);
        assert_eq!(summary.batches, vec![(3, 0.5), (2, 0.25)]);
    }

    #[test]
    fn a_result_without_items_has_no_summary() {
        assert_eq!(InferenceSummary::from_result(&json!({"batches": []})), None);
        assert_eq!(
            InferenceSummary::from_result(&json!({"items": 2})),
            Some(InferenceSummary {
                items: 2,
                batches: Vec::new()
            })
        );
    }
}
