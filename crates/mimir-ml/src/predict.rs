//! Prediction with a native model over a feature matrix: one pass, buffers
//! reused between rows.

use crate::artifact::Native;
use crate::features::Matrix;
use crate::target::Target;
use crate::{MlError, Prediction};
use serde_json::Value;

/// A batch's answers.
pub enum Outputs {
    /// Class codes and the predicted class's probability.
    Classes(Vec<usize>, Vec<f64>),
    /// Numbers.
    Numbers(Vec<f64>),
    /// Cluster numbers.
    Clusters(Vec<usize>),
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Predicts every row of `x`.
pub fn native(model: &Native, target: &Target, x: &Matrix) -> Result<Outputs, MlError> {
    let n = x.rows;
    let n_classes = match target {
        Target::Classes(c) => c.len(),
        _ => 0,
    };
    Ok(match model {
        Native::Tree(tree) => {
            if n_classes > 0 {
                let (mut codes, mut conf) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for i in 0..n {
                    let (value, share) = tree.leaf(x.row(i));
                    codes.push(value as usize);
                    conf.push(f64::from(share));
                }
                Outputs::Classes(codes, conf)
            } else {
                Outputs::Numbers((0..n).map(|i| tree.leaf(x.row(i)).0).collect())
            }
        }
        Native::Forest(trees) => {
            let t = trees.len().max(1) as f64;
            if n_classes > 0 {
                let (mut codes, mut conf) = (Vec::with_capacity(n), Vec::with_capacity(n));
                let mut votes = vec![0u32; n_classes];
                for i in 0..n {
                    votes.fill(0);
                    let row = x.row(i);
                    for tree in trees {
                        votes[tree.leaf(row).0 as usize] += 1;
                    }
                    let mut best = 0;
                    for c in 1..n_classes {
                        if votes[c] > votes[best] {
                            best = c;
                        }
                    }
                    codes.push(best);
                    // The share of trees voting for the answer.
                    conf.push(f64::from(votes[best]) / t);
                }
                Outputs::Classes(codes, conf)
            } else {
                Outputs::Numbers(
                    (0..n)
                        .map(|i| {
                            let row = x.row(i);
                            trees.iter().map(|tree| tree.leaf(row).0).sum::<f64>() / t
                        })
                        .collect(),
                )
            }
        }
        Native::Linear(linear) => {
            if n_classes > 0 {
                let (mut codes, mut conf) = (Vec::with_capacity(n), Vec::with_capacity(n));
                let mut probs = vec![0.0; n_classes];
                for i in 0..n {
                    linear.probabilities(x.row(i), &mut probs);
                    let best = argmax(&probs);
                    codes.push(best);
                    conf.push(probs[best]);
                }
                Outputs::Classes(codes, conf)
            } else {
                let mut out = [0.0];
                Outputs::Numbers(
                    (0..n)
                        .map(|i| {
                            linear.scores(x.row(i), &mut out);
                            out[0]
                        })
                        .collect(),
                )
            }
        }
        Native::Mlp(mlp) => {
            let mut scratch = (Vec::new(), Vec::new());
            let mut out = Vec::new();
            if n_classes > 0 {
                let (mut codes, mut conf) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for i in 0..n {
                    mlp.outputs(x.row(i), &mut scratch, &mut out);
                    let best = argmax(&out);
                    codes.push(best);
                    conf.push(out[best]);
                }
                Outputs::Classes(codes, conf)
            } else {
                Outputs::Numbers(
                    (0..n)
                        .map(|i| {
                            mlp.outputs(x.row(i), &mut scratch, &mut out);
                            out[0]
                        })
                        .collect(),
                )
            }
        }
        Native::Kmeans(centroids) => {
            Outputs::Clusters((0..n).map(|i| centroids.nearest(x.row(i)).0).collect())
        }
    })
}

/// The answers as predictions: classes as their original JSON values.
pub fn to_predictions(outputs: Outputs, target: &Target) -> Vec<Prediction> {
    match outputs {
        Outputs::Classes(codes, conf) => {
            let values: Vec<Value> = match target {
                Target::Classes(classes) => classes.iter().map(|c| c.value()).collect(),
                _ => Vec::new(),
            };
            codes
                .into_iter()
                .zip(conf)
                .map(|(code, confidence)| Prediction {
                    prediction: values.get(code).cloned().unwrap_or(Value::Null),
                    confidence: Some(confidence),
                })
                .collect()
        }
        Outputs::Numbers(numbers) => numbers
            .into_iter()
            .map(|v| Prediction {
                prediction: serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
                confidence: None,
            })
            .collect(),
        Outputs::Clusters(clusters) => clusters
            .into_iter()
            .map(|c| Prediction {
                prediction: Value::from(c),
                confidence: None,
            })
            .collect(),
    }
}
