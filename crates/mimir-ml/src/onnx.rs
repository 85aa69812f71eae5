//! ONNX models: a placeholder until the ONNX runtime is built in.

use crate::{MlError, Prediction};

/// A loaded ONNX model.
pub struct OnnxModel;

impl OnnxModel {
    /// Loads `onnx`, taking `n_features` float features per row.
    pub fn load(onnx: &[u8], n_features: usize) -> Result<OnnxModel, MlError> {
        let _ = (onnx, n_features);
        Err(MlError::Model("ONNX support is not built".into()))
    }

    /// Predicts `n_rows` rows of row-major features.
    pub fn predict(&self, rows: &[f32], n_rows: usize) -> Result<Vec<Prediction>, MlError> {
        let _ = (rows, n_rows);
        Err(MlError::Model("ONNX support is not built".into()))
    }
}
