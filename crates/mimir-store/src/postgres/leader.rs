//! Leadership: one `mimir_leader` row, taken, kept and given up by single
//! statements on the database's clock, and the term check leader-only
//! writes make inside their transaction.

use crate::{StoreError, Term};
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_postgres::{PgConnection, PgPool, Postgres};
use std::time::Duration;

/// The one role elected.
const ROLE: &str = "orchestrator";

/// Takes the leadership when it is free or expired (a new term, even for
/// the candidate whose own lease lapsed), keeps it when `candidate` holds it
/// unexpired (the same term), else `None`.
pub(crate) async fn lead(
    pool: &PgPool,
    candidate: &str,
    ttl: Duration,
) -> Result<Option<Term>, StoreError> {
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let term: Option<i64> = query_scalar::<Postgres, i64>(
        "INSERT INTO mimir_leader AS l (name, holder, term, expires_at) \
         VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond') \
         ON CONFLICT (name) DO UPDATE SET \
             holder = excluded.holder, \
             term = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp() \
                         THEN l.term ELSE l.term + 1 END, \
             expires_at = excluded.expires_at \
         WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp() \
         RETURNING term",
    )
    .bind(ROLE)
    .bind(candidate)
    .bind(ttl_us)
    .fetch_optional(pool)
    .await?;
    Ok(term.map(|t| Term(u64::try_from(t).unwrap_or(0))))
}

/// Frees the leadership if `candidate` holds it in `term`; the holder is
/// cleared so that whoever leads next starts a new term.
pub(crate) async fn resign(pool: &PgPool, candidate: &str, term: Term) -> Result<(), StoreError> {
    query::<Postgres>(
        "UPDATE mimir_leader SET holder = '', expires_at = '-infinity' \
         WHERE name = $1 AND holder = $2 AND term = $3",
    )
    .bind(ROLE)
    .bind(candidate)
    .bind(i64::try_from(term.0).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Refuses with [`StoreError::Deposed`] unless `term` is current and
/// unexpired. The row stays share-locked until the transaction ends, so no
/// other candidate takes over while the leader-only write runs.
pub(crate) async fn check(conn: &mut PgConnection, term: Term) -> Result<(), StoreError> {
    let current: Option<i32> = query_scalar::<Postgres, i32>(
        "SELECT 1 FROM mimir_leader WHERE name = $1 AND term = $2 \
         AND expires_at > clock_timestamp() FOR SHARE",
    )
    .bind(ROLE)
    .bind(i64::try_from(term.0).unwrap_or(i64::MAX))
    .fetch_optional(&mut *conn)
    .await?;
    match current {
        Some(_) => Ok(()),
        None => Err(StoreError::Deposed { term: term.0 }),
    }
}
