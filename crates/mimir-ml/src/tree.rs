//! CART trees for classification (Gini) and regression (squared error).
//!
//! Each node sorts only its own samples by each candidate feature, so a
//! tree costs O(n log² n · features) — what scikit-learn's trees cost.
//! (smartcore's tree scans every training row at every node, O(n · nodes ·
//! features), which took minutes per tree at 80,000 rows; and it cannot draw
//! a random feature subset per split, which a random forest needs.)
//! Impurity decreases are kept per feature, for importances.

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// The `feature` of a leaf.
const LEAF: u32 = u32::MAX;

/// One node. Children are allocated in pairs: the right child is
/// `left + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The feature split on, or [`LEAF`].
    pub feature: u32,
    /// A split's threshold (`x <= value` goes left), or a leaf's answer: a
    /// class code or a mean.
    pub value: f64,
    /// The left child of a split.
    pub left: u32,
    /// A classification leaf's share of samples in its class.
    pub share: f32,
}

/// A trained tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// How a tree grows.
#[derive(Debug, Clone, Copy)]
pub struct TreeParams {
    /// 0 for regression, else the number of classes (labels are codes).
    pub n_classes: usize,
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Features drawn at random per split (all when ≥ the feature count).
    pub mtry: usize,
}

/// The training data, column-major (one `Vec` per feature), and labels.
pub struct Data<'a> {
    pub columns: &'a [Vec<f64>],
    pub y: &'a [f64],
}

struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
}

struct Split {
    feature: usize,
    threshold: f64,
    gain: f64,
}

impl Tree {
    /// Grows a tree on `samples` (row indices, repeated for a bootstrap
    /// sample). `importance` (one per feature) gains each split's weighted
    /// impurity decrease.
    pub fn fit(
        data: &Data<'_>,
        mut samples: Vec<u32>,
        params: &TreeParams,
        rng: &mut StdRng,
        importance: &mut [f64],
    ) -> Tree {
        let n_features = data.columns.len();
        let mut nodes = vec![Node {
            feature: LEAF,
            value: 0.0,
            left: 0,
            share: 1.0,
        }];
        let mut stack = vec![Pending {
            node: 0,
            start: 0,
            end: samples.len(),
            depth: 0,
        }];
        let mut features: Vec<usize> = (0..n_features).collect();
        let mut buffer: Vec<(f64, f64)> = Vec::with_capacity(samples.len());
        let mut counts = vec![0usize; params.n_classes];
        while let Some(p) = stack.pop() {
            let part = &mut samples[p.start..p.end];
            let n = part.len();
            let (answer, share, pure) = leaf_answer(data.y, part, params.n_classes, &mut counts);
            nodes[p.node].value = answer;
            nodes[p.node].share = share;
            if pure || p.depth >= params.max_depth || n < params.min_samples_split.max(2) {
                continue;
            }
            let Some(split) = best_split(data, part, params, rng, &mut features, &mut buffer)
            else {
                continue;
            };
            // Partition: samples going left first.
            let column = &data.columns[split.feature];
            let mut mid = 0;
            for i in 0..n {
                if column[part[i] as usize] <= split.threshold {
                    part.swap(i, mid);
                    mid += 1;
                }
            }
            debug_assert!(mid > 0 && mid < n);
            importance[split.feature] += split.gain;
            let left = nodes.len();
            for _ in 0..2 {
                nodes.push(Node {
                    feature: LEAF,
                    value: 0.0,
                    left: 0,
                    share: 1.0,
                });
            }
            nodes[p.node].feature = split.feature as u32;
            nodes[p.node].value = split.threshold;
            nodes[p.node].left = left as u32;
            stack.push(Pending {
                node: left + 1,
                start: p.start + mid,
                end: p.end,
                depth: p.depth + 1,
            });
            stack.push(Pending {
                node: left,
                start: p.start,
                end: p.start + mid,
                depth: p.depth + 1,
            });
        }
        Tree { nodes }
    }

    /// The leaf `row` lands in: its answer and share.
    pub fn leaf(&self, row: &[f64]) -> (f64, f32) {
        let mut at = 0usize;
        loop {
            let node = &self.nodes[at];
            if node.feature == LEAF {
                return (node.value, node.share);
            }
            at = if row[node.feature as usize] <= node.value {
                node.left as usize
            } else {
                node.left as usize + 1
            };
        }
    }

    /// Checks the structure (a loaded artifact may be corrupt): every child
    /// after its parent, every feature within `width`.
    pub fn check(&self, width: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a tree has no nodes".into());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.feature == LEAF {
                continue;
            }
            let left = node.left as usize;
            if node.feature as usize >= width || left <= i || left + 1 >= self.nodes.len() {
                return Err(format!("tree node {i} is malformed"));
            }
        }
        Ok(())
    }
}

/// A node's answer (majority class and its share, or the mean) and whether
/// it is pure.
fn leaf_answer(
    y: &[f64],
    part: &[u32],
    n_classes: usize,
    counts: &mut [usize],
) -> (f64, f32, bool) {
    let n = part.len().max(1);
    if n_classes == 0 {
        let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
        for &i in part {
            let v = y[i as usize];
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        return (sum / n as f64, 1.0, min >= max);
    }
    counts.fill(0);
    for &i in part {
        counts[y[i as usize] as usize] += 1;
    }
    let mut best = 0;
    for c in 1..n_classes {
        if counts[c] > counts[best] {
            best = c;
        }
    }
    let share = counts[best] as f64 / n as f64;
    (best as f64, share as f32, counts[best] == part.len())
}

/// The split of `part` with the largest impurity decrease over `mtry`
/// randomly drawn non-constant features (as scikit-learn, constant features
/// do not count towards `mtry`).
fn best_split(
    data: &Data<'_>,
    part: &[u32],
    params: &TreeParams,
    rng: &mut StdRng,
    features: &mut [usize],
    buffer: &mut Vec<(f64, f64)>,
) -> Option<Split> {
    let n = part.len();
    let d = features.len();
    let mut best: Option<Split> = None;
    let mut tried = 0;
    let min_leaf = params.min_samples_leaf.max(1);
    let mut left_counts = vec![0usize; params.n_classes];
    let mut total_counts = vec![0usize; params.n_classes];
    for &i in part {
        if params.n_classes > 0 {
            total_counts[data.y[i as usize] as usize] += 1;
        }
    }
    let total_sq: f64 = total_counts.iter().map(|&c| (c * c) as f64).sum();
    let total_sum: f64 = part.iter().map(|&i| data.y[i as usize]).sum();
    let parent = if params.n_classes > 0 {
        total_sq / n as f64
    } else {
        total_sum * total_sum / n as f64
    };
    for k in 0..d {
        if tried >= params.mtry {
            break;
        }
        // Partial Fisher–Yates: the next feature drawn without replacement.
        let pick = if params.mtry >= d {
            k
        } else {
            rng.random_range(k..d)
        };
        features.swap(k, pick);
        let feature = features[k];
        let column = &data.columns[feature];
        buffer.clear();
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &i in part {
            let v = column[i as usize];
            lo = lo.min(v);
            hi = hi.max(v);
            buffer.push((v, data.y[i as usize]));
        }
        if lo >= hi {
            continue;
        }
        tried += 1;
        buffer.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        if params.n_classes > 0 {
            left_counts.fill(0);
            // Σ count² on each side, kept as samples move left.
            let (mut left_sq, mut right_sq) = (0.0f64, total_sq);
            for j in 0..n - 1 {
                let c = buffer[j].1 as usize;
                let lc = left_counts[c] as f64;
                let rc = (total_counts[c] - left_counts[c]) as f64;
                left_sq += 2.0 * lc + 1.0;
                right_sq -= 2.0 * rc - 1.0;
                left_counts[c] += 1;
                let nl = j + 1;
                if buffer[j].0 == buffer[j + 1].0 || nl < min_leaf || n - nl < min_leaf {
                    continue;
                }
                let gain = left_sq / nl as f64 + right_sq / (n - nl) as f64 - parent;
                consider(&mut best, feature, buffer[j].0, buffer[j + 1].0, gain);
            }
        } else {
            let mut left_sum = 0.0;
            for j in 0..n - 1 {
                left_sum += buffer[j].1;
                let nl = j + 1;
                if buffer[j].0 == buffer[j + 1].0 || nl < min_leaf || n - nl < min_leaf {
                    continue;
                }
                let right_sum = total_sum - left_sum;
                let gain = left_sum * left_sum / nl as f64
                    + right_sum * right_sum / (n - nl) as f64
                    - parent;
                consider(&mut best, feature, buffer[j].0, buffer[j + 1].0, gain);
            }
        }
    }
    best
}

fn consider(best: &mut Option<Split>, feature: usize, below: f64, above: f64, gain: f64) {
    if best.as_ref().is_some_and(|b| gain <= b.gain) {
        return;
    }
    let mut threshold = below + (above - below) / 2.0;
    // Rounding may land the midpoint on `above`, which must go right.
    if threshold >= above {
        threshold = below;
    }
    *best = Some(Split {
        feature,
        threshold,
        gain,
    });
}
