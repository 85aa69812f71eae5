//! Why training, loading or predicting failed.

/// An ML failure. Only [`MlError::Internal`] may be worth retrying; the
/// others fail the same way every time.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The data cannot be used: it names the column or row.
    #[error("{0}")]
    Data(String),
    /// The config cannot be used: it names the field.
    #[error("{0}")]
    Config(String),
    /// The artifact is not a model this build can load or run.
    #[error("{0}")]
    Model(String),
    /// Training was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Something failed that is not the input's fault.
    #[error("{0}")]
    Internal(String),
}
