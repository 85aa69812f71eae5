//! The artifact: a self-describing binary envelope around a model.
//!
//! Layout: the 8-byte magic `MIMIRML\0`, the format version (u16, little
//! endian), then a postcard-encoded [`Artifact`]: the model type's name and
//! either a native model with everything needed to build its features
//! (columns, one-hot categories, scaling, label, classes as JSON text) or
//! the bytes of an imported ONNX model and its feature columns. Postcard
//! keeps forests compact (a JSON forest is several times larger) and is
//! deterministic, so the same model gives the same bytes and checksum.

use crate::MlError;
use crate::cluster::Centroids;
use crate::features::FeatureSpec;
use crate::linear::Linear;
use crate::mlp::Mlp;
use crate::target::Target;
use crate::tree::Tree;
use serde::{Deserialize, Serialize};

/// The first bytes of every artifact.
pub const MAGIC: &[u8; 8] = b"MIMIRML\0";

/// The envelope format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// A trained model's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Native {
    Tree(Tree),
    Forest(Vec<Tree>),
    Linear(Linear),
    Mlp(Mlp),
    Kmeans(Centroids),
}

/// What an artifact holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A model trained here.
    Native {
        spec: FeatureSpec,
        label_column: String,
        target: Target,
        model: Native,
    },
    /// An imported ONNX model taking `feature_columns` as one float row.
    Onnx {
        onnx: Vec<u8>,
        feature_columns: Vec<String>,
    },
}

/// The decoded envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// `ModelType::as_str` (a name, so reordering the enum breaks nothing).
    pub model_type: String,
    pub body: Body,
}

impl Artifact {
    /// The artifact's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MlError> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        postcard::to_extend(self, out)
            .map_err(|e| MlError::Internal(format!("encoding the artifact: {e}")))
    }

    /// Reads an artifact, refusing anything that is not one this build
    /// wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact, MlError> {
        if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(MlError::Model(
                "not a Mimir model artifact (bad magic)".into(),
            ));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(MlError::Model(format!(
                "model artifact format {version} is not supported (this build reads {FORMAT_VERSION})"
            )));
        }
        let (artifact, rest) = postcard::take_from_bytes::<Artifact>(&bytes[10..])
            .map_err(|e| MlError::Model(format!("the model artifact is corrupt: {e}")))?;
        if !rest.is_empty() {
            return Err(MlError::Model(
                "the model artifact is corrupt: bytes after its end".into(),
            ));
        }
        Ok(artifact)
    }
}

/// An ONNX model and its feature columns as an artifact.
pub(crate) fn onnx_artifact(onnx: &[u8], feature_columns: &[String]) -> Vec<u8> {
    let artifact = Artifact {
        model_type: mimir_core::ModelType::Onnx.as_str().to_owned(),
        body: Body::Onnx {
            onnx: onnx.to_vec(),
            feature_columns: feature_columns.to_vec(),
        },
    };
    // Encoding bytes and strings into a Vec cannot fail.
    artifact
        .to_bytes()
        .expect("encoding an ONNX artifact into memory")
}
