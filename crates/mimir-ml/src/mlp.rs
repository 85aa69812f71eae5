//! A small multi-layer perceptron: ReLU hidden layers, softmax with
//! cross-entropy for classes or a linear output with squared error for
//! numbers, mini-batches with Adam (or plain SGD), trained with candle.
//!
//! Weights start from the training seed (He-uniform) and batches are
//! shuffled by it, so the same seed and data train the same network. With
//! `early_stopping_rounds`, a tenth of the training rows is held back and
//! training stops after that many epochs without a better validation loss,
//! keeping the best weights. Prediction runs in plain Rust on the kept
//! weights: no tensor library is needed to answer a batch.

use crate::features::Matrix;
use crate::{MlError, Progress};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW, SGD};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// The most hidden layers, and units in one.
pub const MAX_LAYERS: usize = 16;
pub const MAX_UNITS: usize = 4_096;

/// One dense layer: `outputs × inputs` weights, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

/// A trained network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    pub layers: Vec<Layer>,
    /// For regression: the label's mean and standard deviation (the
    /// network learns the standardised label).
    pub y_scale: Option<(f64, f64)>,
}

/// How the network trains.
pub struct MlpParams {
    pub hidden: Vec<usize>,
    /// 0 for regression, else the number of classes.
    pub n_classes: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub early_stopping_rounds: Option<usize>,
    pub sgd: bool,
    pub seed: u64,
}

fn candle(e: candle_core::Error) -> MlError {
    MlError::Internal(format!("neural network: {e}"))
}

/// The rows `order` of `x` as an f32 tensor, and their labels.
fn batch(
    x: &Matrix,
    y: &[f64],
    order: &[usize],
    classes: bool,
) -> Result<(Tensor, Tensor), MlError> {
    let mut xs = Vec::with_capacity(order.len() * x.width);
    for &i in order {
        xs.extend(x.row(i).iter().map(|&v| v as f32));
    }
    let xt = Tensor::from_vec(xs, (order.len(), x.width), &Device::Cpu).map_err(candle)?;
    let yt = if classes {
        let ys: Vec<u32> = order.iter().map(|&i| y[i] as u32).collect();
        Tensor::from_vec(ys, order.len(), &Device::Cpu).map_err(candle)?
    } else {
        let ys: Vec<f32> = order.iter().map(|&i| y[i] as f32).collect();
        Tensor::from_vec(ys, (order.len(), 1), &Device::Cpu).map_err(candle)?
    };
    Ok((xt, yt))
}

fn forward(vars: &[(Var, Var)], x: &Tensor) -> Result<Tensor, candle_core::Error> {
    let mut h = x.clone();
    for (i, (w, b)) in vars.iter().enumerate() {
        h = h
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        if i + 1 < vars.len() {
            h = h.relu()?;
        }
    }
    Ok(h)
}

fn loss(
    vars: &[(Var, Var)],
    x: &Tensor,
    y: &Tensor,
    classes: bool,
) -> Result<Tensor, candle_core::Error> {
    let out = forward(vars, x)?;
    if classes {
        candle_nn::loss::cross_entropy(&out, y)
    } else {
        candle_nn::loss::mse(&out, y)
    }
}

fn snapshot(vars: &[(Var, Var)]) -> Result<Vec<Layer>, MlError> {
    let mut layers = Vec::with_capacity(vars.len());
    for (w, b) in vars {
        let (outputs, inputs) = w.as_tensor().dims2().map_err(candle)?;
        layers.push(Layer {
            weights: w
                .as_tensor()
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(candle)?,
            bias: b.as_tensor().to_vec1::<f32>().map_err(candle)?,
            inputs,
            outputs,
        });
    }
    Ok(layers)
}

impl Mlp {
    /// Trains on `x` (standardised features) and `y` (class codes or
    /// numbers).
    pub fn fit(
        x: &Matrix,
        y: &[f64],
        params: &MlpParams,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Mlp, MlError> {
        let classes = params.n_classes > 0;
        let mut rng = StdRng::seed_from_u64(params.seed);
        let y_scale = if classes {
            None
        } else {
            let n = y.len().max(1) as f64;
            let mean = y.iter().sum::<f64>() / n;
            let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            Some((mean, var.sqrt().max(1e-12)))
        };
        let y: Vec<f64> = match y_scale {
            Some((m, s)) => y.iter().map(|v| (v - m) / s).collect(),
            None => y.to_vec(),
        };

        // Layers with weights drawn from the seed.
        let mut sizes = vec![x.width];
        sizes.extend(&params.hidden);
        sizes.push(if classes { params.n_classes } else { 1 });
        let mut vars = Vec::with_capacity(sizes.len() - 1);
        for pair in sizes.windows(2) {
            let (inputs, outputs) = (pair[0], pair[1]);
            let bound = (6.0 / inputs.max(1) as f64).sqrt();
            let w: Vec<f32> = (0..inputs * outputs)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect();
            let w = Tensor::from_vec(w, (outputs, inputs), &Device::Cpu).map_err(candle)?;
            let b = Tensor::zeros(outputs, DType::F32, &Device::Cpu).map_err(candle)?;
            vars.push((
                Var::from_tensor(&w).map_err(candle)?,
                Var::from_tensor(&b).map_err(candle)?,
            ));
        }
        let all: Vec<Var> = vars
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect();
        enum Opt {
            Adam(AdamW),
            Sgd(SGD),
        }
        let mut opt = if params.sgd {
            Opt::Sgd(SGD::new(all, params.learning_rate).map_err(candle)?)
        } else {
            Opt::Adam(
                AdamW::new(
                    all,
                    ParamsAdamW {
                        lr: params.learning_rate,
                        weight_decay: 0.0,
                        ..ParamsAdamW::default()
                    },
                )
                .map_err(candle)?,
            )
        };

        // Rows, shuffled once; a tenth held back for early stopping.
        let mut rows: Vec<usize> = (0..x.rows).collect();
        rows.shuffle(&mut rng);
        let validation = match params.early_stopping_rounds {
            Some(_) if rows.len() >= 10 => rows.split_off(rows.len() - rows.len() / 10),
            _ => Vec::new(),
        };
        let validation = if validation.is_empty() {
            None
        } else {
            Some(batch(x, &y, &validation, classes)?)
        };

        let batch_size = params.batch_size.max(1);
        let (mut best_loss, mut best, mut stale) = (f64::INFINITY, None, 0usize);
        for epoch in 0..params.epochs {
            if cancel.load(Ordering::Relaxed) {
                return Err(MlError::Cancelled);
            }
            rows.shuffle(&mut rng);
            for chunk in rows.chunks(batch_size) {
                let (xb, yb) = batch(x, &y, chunk, classes)?;
                let l = loss(&vars, &xb, &yb, classes).map_err(candle)?;
                match &mut opt {
                    Opt::Adam(o) => o.backward_step(&l),
                    Opt::Sgd(o) => o.backward_step(&l),
                }
                .map_err(candle)?;
            }
            progress(Progress {
                done: epoch as u64 + 1,
                total: params.epochs as u64,
                unit: "epochs",
            });
            if let (Some((xv, yv)), Some(rounds)) = (&validation, params.early_stopping_rounds) {
                let l = loss(&vars, xv, yv, classes)
                    .and_then(|t| t.to_scalar::<f32>())
                    .map_err(candle)? as f64;
                if l < best_loss {
                    best_loss = l;
                    best = Some(snapshot(&vars)?);
                    stale = 0;
                } else {
                    stale += 1;
                    if stale >= rounds {
                        break;
                    }
                }
            }
        }
        let layers = match best {
            Some(layers) => layers,
            None => snapshot(&vars)?,
        };
        if layers
            .iter()
            .any(|l| l.weights.iter().chain(&l.bias).any(|v| !v.is_finite()))
        {
            return Err(MlError::Data(
                "the neural network diverged (weights are not finite): lower the learning_rate"
                    .into(),
            ));
        }
        Ok(Mlp { layers, y_scale })
    }

    /// The outputs for `row` (class probabilities, or the number in
    /// `out[0]`); `scratch` is reused between rows.
    pub fn outputs(&self, row: &[f64], scratch: &mut (Vec<f64>, Vec<f64>), out: &mut Vec<f64>) {
        let (a, b) = scratch;
        a.clear();
        a.extend_from_slice(row);
        for (i, layer) in self.layers.iter().enumerate() {
            b.clear();
            for o in 0..layer.outputs {
                let w = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                let mut s = f64::from(layer.bias[o]);
                for (wi, xi) in w.iter().zip(a.iter()) {
                    s += f64::from(*wi) * xi;
                }
                if i + 1 < self.layers.len() && s < 0.0 {
                    s = 0.0;
                }
                b.push(s);
            }
            std::mem::swap(a, b);
        }
        out.clear();
        out.extend_from_slice(a);
        match self.y_scale {
            Some((mean, std)) => out[0] = out[0] * std + mean,
            None => crate::linear::softmax(out),
        }
    }

    /// Checks the shapes of a loaded network.
    pub fn check(&self, width: usize, outputs: usize) -> Result<(), String> {
        let mut inputs = width;
        for layer in &self.layers {
            if layer.inputs != inputs
                || layer.weights.len() != layer.inputs * layer.outputs
                || layer.bias.len() != layer.outputs
            {
                return Err("the network's layers do not fit together".into());
            }
            inputs = layer.outputs;
        }
        if self.layers.is_empty() || inputs != outputs {
            return Err("the network's output does not match its target".into());
        }
        Ok(())
    }
}
