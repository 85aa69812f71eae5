//! One storage config's connector as the API and pipeline actions use it:
//! requests checked, an operation's time bounded, transient failures retried
//! with backoff, every operation observed and traced, and every error naming
//! the storage id and backend.

use crate::{
    CommonOptions, Connector, EntitySchema, Name, Observer, Operation, OperationEvent, Query,
    QueryRequest, Record, Selection, StorageError, StorageMetadata, cir,
};
use mimir_core::PluginType;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The first retry's wait; each next one waits four times as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// A storage config's connector, ready for requests.
pub struct Storage {
    id: String,
    connector: Arc<dyn Connector>,
    options: CommonOptions,
    observer: Arc<dyn Observer>,
}

impl Storage {
    /// Wraps `connector`, the one for storage config `id`.
    pub fn new(
        id: impl Into<String>,
        connector: Arc<dyn Connector>,
        options: CommonOptions,
        observer: Arc<dyn Observer>,
    ) -> Storage {
        Storage {
            id: id.into(),
            connector,
            options,
            observer,
        }
    }

    /// The storage config's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The backend.
    pub fn plugin_type(&self) -> PluginType {
        self.connector.plugin_type()
    }

    /// The connector itself.
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// Stores a CIR document; answers the records stored.
    pub async fn store_document(&self, document: Value) -> Result<u64, StorageError> {
        let (entity, records) = cir::records_of(document).map_err(|e| self.named(e))?;
        self.store(&entity, records).await
    }

    /// Stores records of one entity type, all or none.
    pub async fn store(&self, entity: &Name, records: Vec<Record>) -> Result<u64, StorageError> {
        if records.is_empty() {
            return Ok(0);
        }
        let records = Arc::new(records);
        self.run(
            Operation::Store,
            entity,
            |c| {
                let records = records.clone();
                let entity = entity.clone();
                async move {
                    let records = Arc::unwrap_or_clone(records);
                    c.store(&entity, records).await
                }
            },
            |n| *n,
        )
        .await
    }

    /// Retrieves records as CIR documents, one per record.
    pub async fn retrieve_documents(
        &self,
        request: &QueryRequest,
    ) -> Result<Vec<Value>, StorageError> {
        let query = Query::check(request).map_err(|e| self.named(e))?;
        let entity = query.selection.entity_type.clone();
        let records = self.retrieve(&query).await?;
        let plugin = self.plugin_type();
        Ok(records
            .into_iter()
            .map(|record| cir::document_of(record, &self.id, plugin, &entity))
            .collect())
    }

    /// Retrieves one page of records.
    pub async fn retrieve(&self, query: &Query) -> Result<Vec<Record>, StorageError> {
        let entity = query.selection.entity_type.clone();
        self.run(
            Operation::Retrieve,
            &entity,
            |c| async move { c.retrieve(query).await },
            |r| r.len() as u64,
        )
        .await
    }

    /// Sets `updates` on the chosen records; no filter needs `all`.
    pub async fn update(
        &self,
        request: &QueryRequest,
        updates: &Record,
        all: bool,
    ) -> Result<u64, StorageError> {
        let selection = Selection::check(request, all).map_err(|e| self.named(e))?;
        if updates.is_empty() {
            return Err(self.named(StorageError::invalid(
                "updates is empty: name the attributes to set",
            )));
        }
        for name in updates.keys() {
            Name::new(name, "updates attribute").map_err(|e| self.named(e))?;
        }
        let entity = selection.entity_type.clone();
        let selection = &selection;
        self.run(
            Operation::Update,
            &entity,
            |c| async move { c.update(selection, updates).await },
            |n| *n,
        )
        .await
    }

    /// Deletes the chosen records; no filter needs `all`.
    pub async fn delete(&self, request: &QueryRequest, all: bool) -> Result<u64, StorageError> {
        let selection = Selection::check(request, all).map_err(|e| self.named(e))?;
        let entity = selection.entity_type.clone();
        let selection = &selection;
        self.run(
            Operation::Delete,
            &entity,
            |c| async move { c.delete(selection).await },
            |n| *n,
        )
        .await
    }

    /// Creates an entity type from its definition.
    pub async fn create_schema(&self, schema: &EntitySchema) -> Result<(), StorageError> {
        schema.check().map_err(|e| self.named(e))?;
        self.run(
            Operation::CreateSchema,
            &schema.name,
            |c| async move { c.create_schema(schema).await },
            |_| 0,
        )
        .await
    }

    /// Whether the backend answers within the operation timeout.
    pub async fn health(&self) -> Result<(), StorageError> {
        match tokio::time::timeout(self.options.timeout, self.connector.health()).await {
            Ok(result) => result.map_err(|e| self.named(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The backend's type, version and capabilities.
    pub async fn metadata(&self) -> Result<StorageMetadata, StorageError> {
        match tokio::time::timeout(self.options.timeout, self.connector.metadata()).await {
            Ok(result) => result.map_err(|e| self.named(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Runs one operation: bounded by the timeout, transient failures
    /// retried with backoff while time is left, observed and traced once.
    async fn run<'a, T, F, Fut>(
        &'a self,
        operation: Operation,
        entity: &Name,
        attempt: F,
        records: impl Fn(&T) -> u64,
    ) -> Result<T, StorageError>
    where
        F: Fn(&'a dyn Connector) -> Fut,
        Fut: Future<Output = Result<T, StorageError>> + 'a,
    {
        let plugin = self.plugin_type();
        let span = tracing::info_span!(
            "storage operation",
            otel.name = %format!("{} {}", operation.as_str(), entity),
            otel.kind = "client",
            db.system = db_system(plugin),
            db.operation.name = operation.as_str(),
            db.collection.name = %entity,
            mimir.storage_id = %self.id,
            db.response.returned_rows = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        let mut retries = 0;
        let result = async {
            loop {
                let outcome = tokio::time::timeout_at(deadline, attempt(&*self.connector)).await;
                let error = match outcome {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(error)) => error,
                    Err(_) => return Err(self.timed_out()),
                };
                let backoff = FIRST_BACKOFF * 4u32.saturating_pow(retries);
                let time_left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if !error.is_transient() || retries >= self.options.retries || backoff >= time_left {
                    return Err(self.named(error));
                }
                self.observer.retried(operation, plugin, error.kind);
                tracing::debug!(error = %error, retry = retries + 1, "transient storage failure; retrying");
                retries += 1;
                tokio::time::sleep(backoff).await;
            }
        }
        .instrument(span.clone())
        .await;
        let moved = result.as_ref().map(&records).unwrap_or(0);
        match &result {
            Ok(_) => {
                span.record("db.response.returned_rows", moved);
            }
            Err(error) => {
                span.record("error.type", error.kind.as_str());
            }
        }
        self.observer.observe(&OperationEvent {
            operation,
            backend: plugin,
            seconds: started.elapsed().as_secs_f64(),
            records: moved,
            failed: result.is_err(),
            count: 1,
        });
        result
    }

    fn named(&self, error: StorageError) -> StorageError {
        error.context(format!("storage {} ({})", self.id, self.plugin_type()))
    }

    fn timed_out(&self) -> StorageError {
        self.named(StorageError::timeout(format!(
            "no answer within {} ms (options.timeout_ms)",
            self.options.timeout.as_millis()
        )))
    }
}

/// OpenTelemetry's `db.system` value for a backend.
fn db_system(plugin: PluginType) -> &'static str {
    match plugin {
        PluginType::Filesystem => "filesystem",
        PluginType::Postgresql => "postgresql",
        PluginType::Mysql => "mysql",
        PluginType::Redis => "redis",
        PluginType::S3 => "s3",
    }
}
