//! Linear regression (smartcore's least squares) and logistic regression
//! (smartcore's L-BFGS over a loss computed here); the artifact keeps only
//! the coefficients, and prediction is a dot product per row.

use crate::features::Matrix;
use crate::{MlError, Progress};
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{
    LinearRegression, LinearRegressionParameters, LinearRegressionSolverName,
};
use smartcore::optimization::FunctionOrder;
use smartcore::optimization::first_order::FirstOrderOptimizer;
use smartcore::optimization::first_order::lbfgs::LBFGS;
use smartcore::optimization::line_search::Backtracking;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

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

    /// Binary or multinomial logistic regression on class codes `y`,
    /// minimising the mean log-loss plus `alpha / (2n) · |w|²` (scikit-learn's
    /// objective with `C = 1 / alpha`) with smartcore's L-BFGS. The loss and
    /// gradient are computed here over the row-major matrix in one pass
    /// (smartcore's own logistic regression recomputes each row's dot
    /// product through generic accessors and stops only at a 1e-8
    /// gradient, several times slower). Each gradient evaluation is one
    /// reported iteration; cancelling answers a zero gradient, which ends
    /// the optimiser at once.
    pub fn fit_logistic(
        x: &Matrix,
        y: &[f64],
        n_classes: usize,
        alpha: f64,
        max_iter: usize,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Linear, MlError> {
        let width = x.width;
        let outputs = if n_classes == 2 { 1 } else { n_classes };
        let codes: Vec<usize> = y.iter().map(|&v| v as usize).collect();
        let objective = Logistic {
            x,
            codes: &codes,
            outputs,
            l2: alpha / x.rows.max(1) as f64,
        };
        let calls = Cell::new(0u64);
        let progress = RefCell::new(progress);
        let f = |w: &Vec<f64>| -> f64 { objective.evaluate(w, None) };
        let df = |g: &mut Vec<f64>, w: &Vec<f64>| {
            if cancel.load(Ordering::Relaxed) {
                g.fill(0.0);
                return;
            }
            objective.evaluate(w, Some(g));
            calls.set(calls.get() + 1);
            (progress.borrow_mut())(Progress {
                done: calls.get().min(max_iter as u64),
                total: max_iter as u64,
                unit: "iterations",
            });
        };
        let optimizer = LBFGS {
            max_iter,
            g_atol: 1e-5,
            g_rtol: 1e-5,
            ..LBFGS::default()
        };
        let line_search: Backtracking<f64> = Backtracking {
            order: FunctionOrder::THIRD,
            ..Default::default()
        };
        let start = vec![0.0; outputs * (width + 1)];
        let result = optimizer.optimize(&f, &df, &start, &line_search);
        if cancel.load(Ordering::Relaxed) {
            return Err(MlError::Cancelled);
        }
        let w = result.x;
        if w.iter().any(|v| !v.is_finite()) {
            return Err(MlError::Data(
                "logistic regression diverged: raise hyperparameters.alpha".into(),
            ));
        }
        let mut weights = Vec::with_capacity(outputs * width);
        let mut intercepts = Vec::with_capacity(outputs);
        for k in 0..outputs {
            let block = &w[k * (width + 1)..(k + 1) * (width + 1)];
            weights.extend_from_slice(&block[..width]);
            intercepts.push(block[width]);
        }
        Ok(Linear {
            weights,
            intercepts,
            width,
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

/// The logistic loss over a matrix: parameters are, per output, `width`
/// weights then the bias.
struct Logistic<'a> {
    x: &'a Matrix,
    codes: &'a [usize],
    outputs: usize,
    l2: f64,
}

impl Logistic<'_> {
    /// The mean loss at `w`, and its gradient into `grad` when asked. Rows
    /// are split between the cores and the parts summed in row order, so
    /// the result does not depend on thread timing.
    fn evaluate(&self, w: &[f64], grad: Option<&mut Vec<f64>>) -> f64 {
        let width = self.x.width;
        let stride = width + 1;
        let n = self.x.rows.max(1) as f64;
        let want_grad = grad.is_some();
        let parts = crate::parallel::parts(self.x.rows, |rows| self.partial(w, rows, want_grad));
        let mut loss = 0.0;
        if let Some(g) = grad {
            g.fill(0.0);
            for (part_loss, part_grad) in &parts {
                loss += part_loss;
                for (gj, pj) in g.iter_mut().zip(part_grad) {
                    *gj += pj;
                }
            }
            for k in 0..self.outputs {
                for j in 0..width {
                    let at = k * stride + j;
                    g[at] = g[at] / n + self.l2 * w[at];
                }
                g[k * stride + width] /= n;
            }
        } else {
            loss = parts.iter().map(|(l, _)| l).sum();
        }
        let mut penalty = 0.0;
        for k in 0..self.outputs {
            for wj in &w[k * stride..k * stride + width] {
                penalty += wj * wj;
            }
        }
        loss / n + 0.5 * self.l2 * penalty
    }

    /// The summed loss of `rows`, and their summed gradient when asked.
    fn partial(&self, w: &[f64], rows: std::ops::Range<usize>, want_grad: bool) -> (f64, Vec<f64>) {
        let width = self.x.width;
        let stride = width + 1;
        let mut grad = if want_grad {
            vec![0.0; w.len()]
        } else {
            Vec::new()
        };
        let mut loss = 0.0;
        let mut z = vec![0.0; self.outputs];
        for i in rows {
            let row = self.x.row(i);
            for (k, zk) in z.iter_mut().enumerate() {
                let block = &w[k * stride..(k + 1) * stride];
                *zk = block[width]
                    + block[..width]
                        .iter()
                        .zip(row)
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
            }
            let class = self.codes[i];
            if self.outputs == 1 {
                let t = if class == 1 { 1.0 } else { 0.0 };
                // ln(1 + e^z) − t·z, computed without overflow.
                let zi = z[0];
                loss += zi.max(0.0) + (-zi.abs()).exp().ln_1p() - t * zi;
                z[0] = 1.0 / (1.0 + (-zi).exp()) - t;
            } else {
                softmax(&mut z);
                loss -= z[class].max(1e-300).ln();
                z[class] -= 1.0;
            }
            // `z` now holds each output's error.
            if want_grad {
                for (k, err) in z.iter().enumerate() {
                    let block = &mut grad[k * stride..(k + 1) * stride];
                    for (gj, xj) in block[..width].iter_mut().zip(row) {
                        *gj += err * xj;
                    }
                    block[width] += err;
                }
            }
        }
        (loss, grad)
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
