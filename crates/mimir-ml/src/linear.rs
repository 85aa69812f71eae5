//! Linear and logistic regression, trained by smartcore; the artifact
//! keeps only the coefficients, and prediction is a dot product per row.

use crate::MlError;
use crate::features::Matrix;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{
    LinearRegression, LinearRegressionParameters, LinearRegressionSolverName,
};
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

/// A linear model: one row of `width` weights per output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Row-major, `outputs × width`.
    pub weights: Vec<f64>,
    pub intercepts: Vec<f64>,
    pub width: usize,
}

fn dense(x: &Matrix) -> Result<DenseMatrix<f64>, MlError> {
    DenseMatrix::new(x.rows, x.width, x.values.clone(), false)
        .map_err(|e| MlError::Internal(format!("building the feature matrix: {e}")))
}

/// Copies a smartcore coefficient matrix that is `outputs × width` or
/// `width × outputs`.
fn coefficients(m: &DenseMatrix<f64>, width: usize) -> Vec<f64> {
    let (r, c) = m.shape();
    let mut out = Vec::with_capacity(r * c);
    if c == width {
        for i in 0..r {
            for j in 0..c {
                out.push(*m.get((i, j)));
            }
        }
    } else {
        for j in 0..c {
            for i in 0..r {
                out.push(*m.get((i, j)));
            }
        }
    }
    out
}

impl Linear {
    /// Least squares (SVD, which copes with collinear one-hot columns).
    pub fn fit_regression(x: &Matrix, y: &[f64]) -> Result<Linear, MlError> {
        let model: LinearRegression<f64, f64, DenseMatrix<f64>, Vec<f64>> = LinearRegression::fit(
            &dense(x)?,
            &y.to_vec(),
            LinearRegressionParameters::default().with_solver(LinearRegressionSolverName::SVD),
        )
        .map_err(|e| MlError::Data(format!("linear regression cannot fit this data: {e}")))?;
        Ok(Linear {
            weights: coefficients(model.coefficients(), x.width),
            intercepts: vec![*model.intercept()],
            width: x.width,
        })
    }

    /// Binary or multinomial logistic regression with an L2 penalty
    /// `alpha` on class codes `y`.
    pub fn fit_logistic(x: &Matrix, y: &[f64], alpha: f64) -> Result<Linear, MlError> {
        let codes: Vec<u32> = y.iter().map(|&v| v as u32).collect();
        let model: LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>> =
            LogisticRegression::fit(
                &dense(x)?,
                &codes,
                LogisticRegressionParameters::default().with_alpha(alpha),
            )
            .map_err(|e| MlError::Data(format!("logistic regression cannot fit this data: {e}")))?;
        let weights = coefficients(model.coefficients(), x.width);
        let intercepts = coefficients(model.intercept(), 1);
        Ok(Linear {
            weights,
            intercepts,
            width: x.width,
        })
    }

    /// Outputs in all.
    pub fn outputs(&self) -> usize {
        self.intercepts.len()
    }

    /// The raw outputs for `row` into `out`.
    pub fn scores(&self, row: &[f64], out: &mut [f64]) {
        for (k, o) in out.iter_mut().enumerate() {
            let w = &self.weights[k * self.width..(k + 1) * self.width];
            *o = self.intercepts[k] + w.iter().zip(row).map(|(a, b)| a * b).sum::<f64>();
        }
    }

    /// Class probabilities for `row` of a logistic model with `n_classes`
    /// classes, into `probs`.
    pub fn probabilities(&self, row: &[f64], probs: &mut [f64]) {
        if self.outputs() == 1 {
            let mut s = [0.0];
            self.scores(row, &mut s);
            let p = 1.0 / (1.0 + (-s[0]).exp());
            probs[0] = 1.0 - p;
            probs[1] = p;
        } else {
            self.scores(row, probs);
            softmax(probs);
        }
    }

    /// Checks the shapes of a loaded model.
    pub fn check(&self, width: usize) -> Result<(), String> {
        if self.width != width
            || self.weights.len() != self.width * self.outputs()
            || self.outputs() == 0
        {
            return Err("the linear model's shape does not match its features".into());
        }
        Ok(())
    }
}

/// Softmax in place, stable for large scores.
pub fn softmax(v: &mut [f64]) {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}
