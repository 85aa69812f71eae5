//! The real PostgreSQL server of this machine (127.0.0.1:5432, trust auth,
//! database `test`; `MIMIR_TEST_POSTGRES_URL` overrides), with a fresh
//! schema per test, dropped when the test ends.

use std::process::Command;

/// The database tests use.
pub fn url() -> String {
    std::env::var("MIMIR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether end-to-end tests run their orchestrators on PostgreSQL
/// (`MIMIR_TEST_STORE=postgres`, as `scripts/test` sets for its second pass).
pub fn selected() -> bool {
    std::env::var("MIMIR_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// True, after saying so, when a test of SQLite's own file runs in the
/// PostgreSQL pass: it has nothing to test there (it runs in the SQLite pass).
pub fn skip_sqlite_only(test: &str) -> bool {
    let skip = selected();
    if skip {
        eprintln!("{test}: tests SQLite's data directory; skipped with MIMIR_TEST_STORE=postgres");
    }
    skip
}

/// Runs `sql` with psql; panics, saying how to start PostgreSQL, when it fails.
pub fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            &url(),
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-q",
            "-t",
            "-A",
            "-c",
            sql,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (install postgresql-client): {e}"));
    assert!(
        output.status.success(),
        "psql {sql:?} failed against {}: {}\nIs PostgreSQL running? (service postgresql start)",
        url(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A schema of its own for one test; dropped with everything in it.
pub struct Schema {
    /// Its name.
    pub name: String,
}

impl Schema {
    /// Creates a fresh schema.
    pub fn new() -> Schema {
        let name = format!("e2e_{}", uuid::Uuid::now_v7().simple());
        psql(&format!("CREATE SCHEMA {name}"));
        Schema { name }
    }

    /// `serve` flags that put an orchestrator's store in this schema.
    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--store-url".into(),
            url(),
            "--store-schema".into(),
            self.name.clone(),
        ]
    }

    /// Rows of `worktasks` in this schema with `status`.
    pub fn count_status(&self, status: &str) -> u64 {
        psql(&format!(
            "SELECT count(*) FROM {}.worktasks WHERE status = '{status}'",
            self.name
        ))
        .parse()
        .expect("a count")
    }
}

impl Schema {
    /// Tasks not completed, with what holds them: for failure messages.
    pub fn unfinished(&self) -> String {
        psql(&format!(
            "SELECT status, attempt, retry_count, worker_id, lease_expires_at, not_before, \
             left(error_message, 80) FROM {}.worktasks WHERE status <> 'completed' LIMIT 20",
            self.name
        ))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &url(),
                "-X",
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}
