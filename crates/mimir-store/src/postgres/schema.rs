//! Numbered migrations, applied at open under an advisory lock so replicas
//! starting together apply each once, and recorded in `mimir_migrations`.

use crate::StoreError;
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::raw_sql::raw_sql;
use sqlx_postgres::{PgConnection, PgPool, Postgres};

/// Migrations, applied in order; `mimir_migrations` records each by number.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_worktasks",
        include_str!("../../migrations/postgres/0001_worktasks.sql"),
    ),
    (
        "0002_task_counts",
        include_str!("../../migrations/postgres/0002_task_counts.sql"),
    ),
    (
        "0003_catalog",
        include_str!("../../migrations/postgres/0003_catalog.sql"),
    ),
    (
        "0004_ml_models",
        include_str!("../../migrations/postgres/0004_ml_models.sql"),
    ),
    (
        "0005_leader",
        include_str!("../../migrations/postgres/0005_leader.sql"),
    ),
    (
        "0006_schedules",
        include_str!("../../migrations/postgres/0006_schedules.sql"),
    ),
];

/// First key of the advisory locks this backend takes; the second is the
/// schema's hash, so stores in different schemas never wait on each other.
pub(crate) const LOCK_MIGRATE: i32 = 0x6d69_0001;
/// Held while a lease with type limits counts what runs.
pub(crate) const LOCK_LIMITS: i32 = 0x6d69_0002;
/// Held while the count deltas are folded into the totals.
pub(crate) const LOCK_COMPACT: i32 = 0x6d69_0003;

/// Applies the migrations not yet applied, each in its own transaction,
/// holding the migration lock throughout.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    query::<Postgres>("SELECT pg_advisory_lock($1, hashtext(current_schema()))")
        .bind(LOCK_MIGRATE)
        .execute(&mut *conn)
        .await?;
    let outcome = apply(&mut conn).await;
    let unlocked = query::<Postgres>("SELECT pg_advisory_unlock($1, hashtext(current_schema()))")
        .bind(LOCK_MIGRATE)
        .execute(&mut *conn)
        .await;
    outcome?;
    unlocked?;
    Ok(())
}

async fn apply(conn: &mut PgConnection) -> Result<(), StoreError> {
    raw_sql(
        "CREATE TABLE IF NOT EXISTS mimir_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .execute(&mut *conn)
    .await?;
    let applied = applied(&mut *conn).await?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Postgres(format!(
            "the database has schema version {applied}, newer than this binary knows ({}); \
             upgrade mimir-aip or use another database or schema",
            MIGRATIONS.len()
        )));
    }
    for (number, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        let mut tx = conn.begin().await?;
        raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
            StoreError::Postgres(format!("migration {name} failed: {}", StoreError::from(e)))
        })?;
        query::<Postgres>("INSERT INTO mimir_migrations (version, name) VALUES ($1, $2)")
            .bind(number as i32 + 1)
            .bind(*name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(migration = name, "store migrated");
    }
    Ok(())
}

async fn applied(conn: &mut PgConnection) -> Result<usize, StoreError> {
    let version: Option<i32> =
        query_scalar::<Postgres, Option<i32>>("SELECT max(version) FROM mimir_migrations")
            .fetch_one(&mut *conn)
            .await?;
    Ok(version.unwrap_or(0).max(0) as usize)
}

/// Answers a query and checks every migration is applied (the schema was
/// not rolled back under a running store).
pub(crate) async fn check_current(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let applied = applied(&mut conn).await?;
    if applied != MIGRATIONS.len() {
        return Err(StoreError::Postgres(format!(
            "schema at migration {applied}, this build needs {}",
            MIGRATIONS.len()
        )));
    }
    Ok(())
}
