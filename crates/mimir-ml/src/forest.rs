//! Random forests: trees on bootstrap samples with a random feature subset
//! per split, grown in parallel (one thread per core).
//!
//! Each tree's randomness comes from its own RNG, seeded from the training
//! seed and the tree's index, so the forest is the same whatever order the
//! threads finish in. Progress is reported per tree from the calling
//! thread; cancelling stops the threads before their next tree.

use crate::tree::{Data, Tree, TreeParams};
use crate::{MlError, Progress};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A tree's own seed: SplitMix64 of the forest seed and its index, so
/// neighbouring trees draw unrelated streams.
pub fn tree_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Grows `n_trees` trees on bootstrap samples of the `rows` rows of `data`.
/// Answers the trees, in index order, and the per-feature importances
/// (each tree's normalised, averaged).
pub fn fit(
    data: &Data<'_>,
    rows: usize,
    params: &TreeParams,
    n_trees: usize,
    seed: u64,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(Vec<Tree>, Vec<f64>), MlError> {
    let n_features = data.columns.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(n_trees)
        .max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut trees: Vec<Option<Tree>> = vec![None; n_trees];
    let mut importances: Vec<Vec<f64>> = vec![Vec::new(); n_trees];
    progress(Progress {
        done: 0,
        total: n_trees as u64,
        unit: "trees",
    });
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Tree, Vec<f64>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= n_trees {
                        break;
                    }
                    let mut rng = StdRng::seed_from_u64(tree_seed(seed, index));
                    let samples: Vec<u32> = (0..rows)
                        .map(|_| rng.random_range(0..rows) as u32)
                        .collect();
                    let mut imp = vec![0.0; n_features];
                    let tree = Tree::fit(data, samples, params, &mut rng, &mut imp);
                    if tx.send((index, tree, imp)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        loop {
            if cancel.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((index, tree, imp)) => {
                    trees[index] = Some(tree);
                    importances[index] = imp;
                    done += 1;
                    progress(Progress {
                        done,
                        total: n_trees as u64,
                        unit: "trees",
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(MlError::Cancelled);
    }
    let trees: Vec<Tree> = trees.into_iter().flatten().collect();
    if trees.len() != n_trees {
        return Err(MlError::Internal("a forest thread ended early".into()));
    }
    // Summed in tree order, so the figures do not depend on which thread
    // finished first.
    let mut importance = vec![0.0; n_features];
    for imp in &importances {
        let sum: f64 = imp.iter().sum();
        if sum > 0.0 {
            for (total, v) in importance.iter_mut().zip(imp) {
                *total += v / sum;
            }
        }
    }
    let sum: f64 = importance.iter().sum();
    if sum > 0.0 {
        for v in &mut importance {
            *v /= sum;
        }
    }
    Ok((trees, importance))
}
