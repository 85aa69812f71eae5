//! Imported ONNX models, run on `tract` (pure Rust, no native runtime).
//!
//! A model takes one float tensor `[batch, n_features]`, whatever batch size
//! its file declares: the batch dimension is made symbolic before the graph
//! is optimised, so one loaded model predicts batches of any size. What it
//! answers is read from its outputs' types, the shapes scikit-learn models
//! have once converted by `skl2onnx` (with `zipmap` off):
//!
//! - a label (int64 or string `[batch]`) and probabilities (float
//!   `[batch, classes]`), as classifiers give: the prediction is the label,
//!   the confidence the highest probability;
//! - one float output `[batch]` or `[batch, 1]`, as regressors and small
//!   networks give: the prediction is the number, with no confidence;
//! - one label output alone: the label, with no confidence.
//!
//! Anything else (a `zipmap` sequence of maps, several float outputs, a
//! second input) is refused when the model loads, not when it first runs.
//!
//! Two classifier shapes tract does not answer as onnxruntime does are
//! mended before tract sees them: string class labels (tract's
//! `LinearClassifier` and `TreeEnsembleClassifier` build only numeric ones)
//! and a binary tree ensemble whose leaves score only one class (tract's
//! label is then always the first class). For these the file's classes are
//! kept aside and the label is the class of the highest probability, which
//! is what onnxruntime answers for them.

use crate::{MlError, Prediction};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// A loaded, optimised ONNX model.
pub(crate) struct OnnxModel {
    plan: Arc<TypedSimplePlan>,
    n_features: usize,
    outputs: Outputs,
}

/// How a model's outputs read as predictions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outputs {
    /// One number per row.
    Value,
    /// One label per row.
    Label,
    /// A label and a probability per class, per row.
    LabelAndProbabilities,
    /// Probabilities per class, per row, and the classes they stand for:
    /// the label is the class of the highest.
    ClassOfHighestProbability(Vec<Value>),
}

impl OnnxModel {
    /// Loads and optimises an ONNX model taking one f32 input of shape
    /// [batch, n_features].
    pub(crate) fn load(onnx: &[u8], n_features: usize) -> Result<OnnxModel, MlError> {
        if n_features == 0 {
            return Err(MlError::Model(
                "an ONNX model needs at least one feature column".into(),
            ));
        }
        // tract checks what it parses, but a hostile graph must not take
        // the process down with it if some operator asserts instead.
        match catch_unwind(AssertUnwindSafe(|| load(onnx, n_features))) {
            Ok(result) => result,
            Err(_) => Err(MlError::Model(
                "the ONNX model could not be loaded: the runtime failed on it".into(),
            )),
        }
    }

    /// Predicts row-major f32 features (n_rows × n_features).
    pub(crate) fn predict(&self, rows: &[f32], n_rows: usize) -> Result<Vec<Prediction>, MlError> {
        if rows.len() != n_rows.saturating_mul(self.n_features) {
            return Err(MlError::Data(format!(
                "{} values are not {n_rows} rows of {} features",
                rows.len(),
                self.n_features
            )));
        }
        if n_rows == 0 {
            return Ok(Vec::new());
        }
        match catch_unwind(AssertUnwindSafe(|| self.run(rows, n_rows))) {
            Ok(result) => result,
            Err(_) => Err(MlError::Model(
                "the ONNX model failed to run: the runtime failed on it".into(),
            )),
        }
    }

    fn run(&self, rows: &[f32], n_rows: usize) -> Result<Vec<Prediction>, MlError> {
        let input = Tensor::from_shape(&[n_rows, self.n_features], rows)
            .map_err(|e| MlError::Internal(format!("building the ONNX input: {e}")))?;
        let outputs = self
            .plan
            .run(tvec![input.into_tvalue()])
            .map_err(|e| MlError::Model(format!("the ONNX model failed to run: {e:#}")))?;
        match &self.outputs {
            Outputs::Value => {
                let values = floats(&outputs[0], n_rows, "output")?;
                let mut predictions = Vec::with_capacity(n_rows);
                for (row, value) in values.into_iter().enumerate() {
                    predictions.push(Prediction {
                        prediction: number(value, row)?,
                        confidence: None,
                    });
                }
                Ok(predictions)
            }
            Outputs::Label => {
                let labels = labels(&outputs[0], n_rows)?;
                Ok(labels
                    .into_iter()
                    .map(|prediction| Prediction {
                        prediction,
                        confidence: None,
                    })
                    .collect())
            }
            Outputs::LabelAndProbabilities => {
                let labels = labels(&outputs[0], n_rows)?;
                let probabilities = floats(&outputs[1], n_rows, "probabilities")?;
                let classes = probabilities.len() / n_rows;
                let mut predictions = Vec::with_capacity(n_rows);
                for (row, (label, p)) in labels
                    .into_iter()
                    .zip(probabilities.chunks(classes))
                    .enumerate()
                {
                    let best = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if !best.is_finite() {
                        return Err(MlError::Data(format!(
                            "row {row}: the ONNX model's probabilities are not finite numbers"
                        )));
                    }
                    predictions.push(Prediction {
                        prediction: label,
                        confidence: Some(best),
                    });
                }
                Ok(predictions)
            }
            Outputs::ClassOfHighestProbability(classes) => {
                let probabilities = floats(&outputs[1], n_rows, "probabilities")?;
                if probabilities.len() != n_rows * classes.len() {
                    return Err(MlError::Model(format!(
                        "the ONNX model answered {} probabilities per row for {} classes",
                        probabilities.len() / n_rows,
                        classes.len()
                    )));
                }
                let mut predictions = Vec::with_capacity(n_rows);
                for (row, p) in probabilities.chunks(classes.len()).enumerate() {
                    // The first of equal highest, as an argmax takes it.
                    let mut best = 0;
                    for (class, &value) in p.iter().enumerate() {
                        if value > p[best] {
                            best = class;
                        }
                    }
                    if !p[best].is_finite() {
                        return Err(MlError::Data(format!(
                            "row {row}: the ONNX model's probabilities are not finite numbers"
                        )));
                    }
                    predictions.push(Prediction {
                        prediction: classes[best].clone(),
                        confidence: Some(p[best]),
                    });
                }
                Ok(predictions)
            }
        }
    }
}

/// What predicting a batch answers.
type Predictions = Result<Vec<Prediction>, MlError>;

/// The runtime alone, for `bench ml` to time beside onnxruntime on the
/// same f32 rows: loads `onnx` and answers its `predict`, without the
/// record encoding [`crate::Model::predict`] adds.
#[doc(hidden)]
pub fn raw_predictor(
    onnx: &[u8],
    n_features: usize,
) -> Result<impl Fn(&[f32], usize) -> Predictions, MlError> {
    let model = OnnxModel::load(onnx, n_features)?;
    Ok(move |rows: &[f32], n_rows: usize| model.predict(rows, n_rows))
}

/// Parses, checks and optimises the model with a symbolic batch dimension.
fn load(onnx: &[u8], n_features: usize) -> Result<OnnxModel, MlError> {
    let unreadable =
        |e: TractError| MlError::Model(format!("not an ONNX model this runtime can read: {e:#}"));
    let framework = tract_onnx::onnx();
    let mut proto = framework
        .proto_model_for_read(&mut &onnx[..])
        .map_err(unreadable)?;
    let classes = mend_classifier(&mut proto);
    let mut model = framework
        .model_for_proto_model(&proto)
        .map_err(unreadable)?;
    match model.inputs.len() {
        1 => {}
        0 => {
            return Err(MlError::Model(
                "the ONNX model takes no input: it must take one float tensor [batch, features]"
                    .into(),
            ));
        }
        n => {
            return Err(MlError::Model(format!(
                "the ONNX model takes {n} inputs: it must take one float tensor [batch, features]"
            )));
        }
    }
    check_declared_input(&model, n_features)?;
    let batch = model.symbols.sym("batch");
    let fact = f32::fact([batch.to_dim(), n_features.to_dim()]);
    model = model
        .with_input_fact(0, fact.into())
        .map_err(|e| MlError::Model(format!("the ONNX model's input cannot be set: {e:#}")))?;
    let typed = model.into_optimized().map_err(|e| {
        MlError::Model(format!(
            "the ONNX model cannot run on {n_features} float features per row: {e:#}"
        ))
    })?;
    let mut outputs = read_outputs(&typed)?;
    if let (Some(classes), Outputs::LabelAndProbabilities) = (classes, &outputs) {
        outputs = Outputs::ClassOfHighestProbability(classes);
    }
    let plan = typed
        .into_runnable()
        .map_err(|e| MlError::Model(format!("the ONNX model cannot be planned: {e:#}")))?;
    Ok(OnnxModel {
        plan,
        n_features,
        outputs,
    })
}

/// Mends the classifier shapes tract answers differently (see the module
/// doc) when one ai.onnx.ml classifier gives the model's two outputs, and
/// answers its classes in probability order.
fn mend_classifier(proto: &mut tract_onnx::pb::ModelProto) -> Option<Vec<Value>> {
    const INT64: i32 = 7;
    let graph = proto.graph.as_mut()?;
    let [label, probabilities] = graph.output.as_mut_slice() else {
        return None;
    };
    let node = graph.node.iter_mut().find(|n| {
        n.domain == "ai.onnx.ml"
            && (n.op_type == "LinearClassifier" || n.op_type == "TreeEnsembleClassifier")
            && n.output.first() == Some(&label.name)
            && n.output.get(1) == Some(&probabilities.name)
    })?;
    let ints_name = if node.op_type == "LinearClassifier" {
        "classlabels_ints"
    } else {
        "classlabels_int64s"
    };
    if let Some(attribute) = node
        .attribute
        .iter_mut()
        .find(|a| a.name == "classlabels_strings")
    {
        let classes: Vec<Value> = attribute
            .strings
            .iter()
            .map(|s| Value::String(String::from_utf8_lossy(s).into_owned()))
            .collect();
        attribute.name = ints_name.to_string();
        attribute.r#type = tract_onnx::pb::attribute_proto::AttributeType::Ints as i32;
        attribute.ints = (0..classes.len() as i64).collect();
        attribute.strings.clear();
        if let Some(tract_onnx::pb::type_proto::Value::TensorType(tensor)) =
            label.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            tensor.elem_type = INT64;
        }
        return Some(classes);
    }
    if node.op_type != "TreeEnsembleClassifier" {
        return None;
    }
    let ints = &node.attribute.iter().find(|a| a.name == ints_name)?.ints;
    let class_ids = &node.attribute.iter().find(|a| a.name == "class_ids")?.ints;
    if ints.len() == 2 && class_ids.iter().all(|&id| id == 0) {
        return Some(ints.iter().map(|&i| Value::from(i)).collect());
    }
    None
}

/// Refuses a declared input that cannot be `[batch, n_features]` of f32, so
/// the error names the width rather than an operator deep in the graph.
fn check_declared_input(model: &InferenceModel, n_features: usize) -> Result<(), MlError> {
    let declared = model
        .input_fact(0)
        .map_err(|e| MlError::Model(format!("the ONNX model's input is unreadable: {e:#}")))?;
    if let Some(datum_type) = declared.datum_type.concretize()
        && datum_type != f32::datum_type()
    {
        return Err(MlError::Model(format!(
            "the ONNX model takes {datum_type:?} input: it must take float (f32) features"
        )));
    }
    if let Some(rank) = declared.shape.rank().concretize()
        && rank != 2
    {
        return Err(MlError::Model(format!(
            "the ONNX model's input has {rank} dimensions: it must be [batch, features]"
        )));
    }
    if let Some(width) = declared.shape.dims().nth(1).and_then(|d| d.concretize())
        && let Some(width) = width.as_i64()
        && width != n_features as i64
    {
        return Err(MlError::Model(format!(
            "the ONNX model takes {width} features per row, but {n_features} feature columns were given"
        )));
    }
    Ok(())
}

/// Reads the kind of prediction the outputs give; see the module doc.
fn read_outputs(model: &TypedModel) -> Result<Outputs, MlError> {
    let outlets = model
        .output_outlets()
        .map_err(|e| MlError::Model(format!("the ONNX model's outputs are unreadable: {e:#}")))?;
    let mut facts = Vec::with_capacity(outlets.len());
    for outlet in outlets {
        let fact = model.outlet_fact(*outlet).map_err(|e| {
            MlError::Model(format!("the ONNX model's outputs are unreadable: {e:#}"))
        })?;
        facts.push((
            fact.datum_type,
            fact.rank(),
            fact.shape.dims().get(1).cloned(),
        ));
    }
    let is_label = |dt: DatumType| dt == DatumType::String || dt.is_integer();
    let is_float = |dt: DatumType| dt.is_float();
    match facts.as_slice() {
        [(dt, rank, width)] if is_float(*dt) => {
            if *rank == 1 || (*rank == 2 && width.as_ref().and_then(TDim::as_i64) == Some(1)) {
                Ok(Outputs::Value)
            } else {
                Err(MlError::Model(
                    "the ONNX model's one float output must be [batch] or [batch, 1]".into(),
                ))
            }
        }
        [(dt, 1, _)] if is_label(*dt) => Ok(Outputs::Label),
        [(label, 1, _), (p, 2, _)] if is_label(*label) && is_float(*p) => {
            Ok(Outputs::LabelAndProbabilities)
        }
        _ => {
            let found: Vec<String> = facts
                .iter()
                .map(|(dt, rank, _)| format!("{dt:?} of {rank} dimensions"))
                .collect();
            Err(MlError::Model(format!(
                "the ONNX model's outputs ({}) are not a label and probabilities [batch, classes] \
                 (convert with zipmap off), nor one number per row",
                found.join(", ")
            )))
        }
    }
}

/// An output's values as f64, checked to hold a whole number per row.
fn floats(output: &TValue, n_rows: usize, what: &str) -> Result<Vec<f64>, MlError> {
    let shape = output.shape();
    if shape.first() != Some(&n_rows) || !output.len().is_multiple_of(n_rows) || output.len() == 0 {
        return Err(MlError::Model(format!(
            "the ONNX model answered {what} of shape {shape:?} for {n_rows} rows"
        )));
    }
    let values = output
        .cast_to::<f64>()
        .map_err(|e| MlError::Model(format!("the ONNX model's {what} are not numbers: {e:#}")))?;
    let view = values
        .to_plain_array_view::<f64>()
        .map_err(|e| MlError::Model(format!("the ONNX model's {what} are unreadable: {e:#}")))?;
    Ok(view.iter().copied().collect())
}

/// An output's labels as JSON: numbers for integer labels, else strings.
fn labels(output: &TValue, n_rows: usize) -> Result<Vec<Value>, MlError> {
    if output.shape() != [n_rows] {
        return Err(MlError::Model(format!(
            "the ONNX model answered labels of shape {:?} for {n_rows} rows",
            output.shape()
        )));
    }
    let unreadable = |e: TractError| MlError::Model(format!("the ONNX model's labels: {e:#}"));
    if output.datum_type() == DatumType::String {
        let view = output.to_plain_array_view::<String>().map_err(unreadable)?;
        return Ok(view.iter().map(|s| Value::String(s.clone())).collect());
    }
    let ints = output.cast_to::<i64>().map_err(unreadable)?;
    let view = ints.to_plain_array_view::<i64>().map_err(unreadable)?;
    Ok(view.iter().map(|&i| Value::from(i)).collect())
}

/// A predicted number as JSON, which has no NaN or infinity.
fn number(value: f64, row: usize) -> Result<Value, MlError> {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| {
            MlError::Data(format!(
                "row {row}: the ONNX model predicted {value}, which is not a finite number"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_model_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<OnnxModel>();
    }

    #[test]
    fn bytes_that_are_not_onnx_are_a_model_error() {
        for bytes in [&b""[..], b"not onnx", &[0xff; 32]] {
            match OnnxModel::load(bytes, 3) {
                Err(MlError::Model(message)) => assert!(message.contains("ONNX"), "{message}"),
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("{bytes:?} loaded"),
            }
        }
    }

    #[test]
    fn no_features_is_refused_before_parsing() {
        assert!(matches!(OnnxModel::load(b"", 0), Err(MlError::Model(_))));
    }
}
