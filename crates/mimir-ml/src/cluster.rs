//! K-means, trained by smartcore (k-means++ seeding with the training
//! seed); the artifact keeps the centroids and prediction is the nearest.

use crate::MlError;
use crate::features::Matrix;
use serde::{Deserialize, Serialize};
use smartcore::cluster::kmeans::{KMeans, KMeansParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// The most clusters.
pub const MAX_K: usize = 1_000;

/// Cluster centres, row-major `k × width`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Centroids {
    pub centres: Vec<f64>,
    pub k: usize,
    pub width: usize,
}

impl Centroids {
    /// Clusters the rows of `x` into `k`.
    pub fn fit(x: &Matrix, k: usize, max_iter: usize, seed: u64) -> Result<Centroids, MlError> {
        if k > x.rows {
            return Err(MlError::Data(format!(
                "k-means with k = {k} needs at least {k} training records, not {}",
                x.rows
            )));
        }
        let data = DenseMatrix::new(x.rows, x.width, x.values.clone(), false)
            .map_err(|e| MlError::Internal(format!("building the feature matrix: {e}")))?;
        let params = KMeansParameters {
            k,
            max_iter,
            seed: Some(seed),
        };
        let model: KMeans<f64, u32, DenseMatrix<f64>, Vec<u32>> = KMeans::fit(&data, params)
            .map_err(|e| MlError::Data(format!("k-means cannot fit this data: {e}")))?;
        let assigned = model
            .predict(&data)
            .map_err(|e| MlError::Internal(format!("k-means: {e}")))?;
        // smartcore keeps its centroids private: the means of the final
        // assignment are them (one more Lloyd update at most).
        let mut centres = vec![0.0; k * x.width];
        let mut sizes = vec![0usize; k];
        for (i, &c) in assigned.iter().enumerate() {
            let c = c as usize;
            sizes[c] += 1;
            for (acc, v) in centres[c * x.width..(c + 1) * x.width]
                .iter_mut()
                .zip(x.row(i))
            {
                *acc += v;
            }
        }
        for c in 0..k {
            if sizes[c] > 0 {
                for v in &mut centres[c * x.width..(c + 1) * x.width] {
                    *v /= sizes[c] as f64;
                }
            }
        }
        Ok(Centroids {
            centres,
            k,
            width: x.width,
        })
    }

    /// The nearest centre to `row` and its squared distance.
    pub fn nearest(&self, row: &[f64]) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for c in 0..self.k {
            let centre = &self.centres[c * self.width..(c + 1) * self.width];
            let d: f64 = centre.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum();
            if d < best.1 {
                best = (c, d);
            }
        }
        best
    }

    /// The sum of squared distances of the rows of `x` to their centres.
    pub fn inertia(&self, x: &Matrix) -> f64 {
        (0..x.rows).map(|i| self.nearest(x.row(i)).1).sum()
    }

    /// Checks the shapes of a loaded model.
    pub fn check(&self, width: usize) -> Result<(), String> {
        if self.width != width || self.k == 0 || self.centres.len() != self.k * self.width {
            return Err("the k-means model's shape does not match its features".into());
        }
        Ok(())
    }
}
