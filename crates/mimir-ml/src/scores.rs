//! Held-out scores: accuracy, macro precision/recall/F1 and the confusion
//! matrix for classifiers; RMSE, MAE and R² for regressors.

use mimir_core::PerformanceMetrics;

/// Scores class codes. `truth` may hold the code `n_classes` for a class the
/// model never saw (evaluation on fresh data): it counts as wrong and has no
/// row in the matrix.
pub fn classification(
    truth: &[f64],
    predicted: &[usize],
    classes: Vec<String>,
) -> PerformanceMetrics {
    let k = classes.len();
    let mut matrix = vec![vec![0u64; k]; k];
    let mut correct = 0u64;
    for (&t, &p) in truth.iter().zip(predicted) {
        let t = t as usize;
        if t == p {
            correct += 1;
        }
        if t < k && p < k {
            matrix[t][p] += 1;
        }
    }
    // Macro averages over the classes that occur in the truth or the
    // predictions, as scikit-learn does.
    let (mut precision, mut recall, mut f1, mut counted) = (0.0, 0.0, 0.0, 0usize);
    for c in 0..k {
        let tp = matrix[c][c] as f64;
        let actual: u64 = matrix[c].iter().sum();
        let predicted_c: u64 = matrix.iter().map(|row| row[c]).sum();
        if actual == 0 && predicted_c == 0 {
            continue;
        }
        counted += 1;
        let p = if predicted_c == 0 {
            0.0
        } else {
            tp / predicted_c as f64
        };
        let r = if actual == 0 { 0.0 } else { tp / actual as f64 };
        precision += p;
        recall += r;
        f1 += if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
    }
    let n = truth.len().max(1) as f64;
    let m = counted.max(1) as f64;
    PerformanceMetrics {
        accuracy: Some(correct as f64 / n),
        precision: Some(precision / m),
        recall: Some(recall / m),
        f1_score: Some(f1 / m),
        confusion_matrix: matrix,
        classes,
        ..Default::default()
    }
}

/// Scores numbers.
pub fn regression(truth: &[f64], predicted: &[f64]) -> PerformanceMetrics {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let (mut se, mut ae, mut total) = (0.0, 0.0, 0.0);
    for (&t, &p) in truth.iter().zip(predicted) {
        se += (t - p) * (t - p);
        ae += (t - p).abs();
        total += (t - mean) * (t - mean);
    }
    // A constant truth: R² is 1 for a perfect fit, else 0 (scikit-learn's
    // convention).
    let r2 = if total == 0.0 {
        if se == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - se / total
    };
    PerformanceMetrics {
        rmse: Some((se / n).sqrt()),
        mae: Some(ae / n),
        r2_score: Some(r2),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_scores_match_a_worked_example() {
        // truth a a b b, predicted a b b b
        let m = classification(
            &[0.0, 0.0, 1.0, 1.0],
            &[0, 1, 1, 1],
            vec!["a".into(), "b".into()],
        );
        assert_eq!(m.accuracy, Some(0.75));
        assert_eq!(m.confusion_matrix, vec![vec![1, 1], vec![0, 2]]);
        // precision a=1, b=2/3; recall a=1/2, b=1
        assert!((m.precision.unwrap() - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((m.recall.unwrap() - 0.75).abs() < 1e-12);
    }

    #[test]
    fn a_perfect_regression_scores_one() {
        let m = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!(m.r2_score, Some(1.0));
        assert_eq!(m.rmse, Some(0.0));
    }
}
