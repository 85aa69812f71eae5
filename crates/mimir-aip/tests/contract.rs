//! Contract fuzzing: schemathesis generates requests from `/openapi.json`
//! (valid and invalid ones, and sequences that follow the links between
//! operations) against a real orchestrator, and fails on any 5xx, any status
//! the document does not list, any answer whose body, headers or content
//! type do not match the document, a method a path does not serve that is
//! not answered 405, and a created resource that cannot be read back (or can
//! after its deletion).
//!
//! schemathesis comes from PyPI; `scripts/test` installs it with
//! `scripts/install-schemathesis`, and this test runs that script itself
//! when it finds no executable, so a bare `cargo test` works too.

mod harness;

use harness::Orchestrator;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Longest the fuzzing runs, in seconds (schemathesis spends all of it).
const MAX_TIME_S: &str = "60";
/// Examples per operation and phase.
const MAX_EXAMPLES: &str = "25";
/// The longest one request may take: a worker's lease call waits up to 30 s
/// (`wait_ms`) by design.
const REQUEST_TIMEOUT_S: &str = "35";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The schemathesis executable: `MIMIR_SCHEMATHESIS`, else the one the
/// install script put under the target directory (installing it first when
/// it is missing). `None` when it cannot be installed.
fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MIMIR_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    let script = workspace().join("scripts/install-schemathesis");
    let output = Command::new(&script).output().ok()?;
    if !output.status.success() {
        eprintln!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

#[test]
fn the_api_keeps_its_openapi_contract_under_fuzzing() {
    let Some(schemathesis) = schemathesis() else {
        eprintln!(
            "\n{bar}\nSKIPPED the_api_keeps_its_openapi_contract_under_fuzzing: schemathesis could \
             not be installed (needs python3 with venv and PyPI). Run scripts/install-schemathesis \
             to see why.\n{bar}\n",
            bar = "!".repeat(78)
        );
        return;
    };
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let started = Instant::now();
    let output = Command::new(&schemathesis)
        .args([
            "run",
            &format!("{}/openapi.json", orchestrator.url),
            "--checks",
            "all",
            // Whether the server takes exactly what the schemas allow: it
            // refuses more (a pipeline that must exist, references to
            // earlier steps, a bound above another) and takes an empty
            // query value as "no filter", which schemas cannot say.
            "--exclude-checks",
            "positive_data_acceptance,negative_data_rejection",
            "--max-examples",
            MAX_EXAMPLES,
            "--max-time",
            MAX_TIME_S,
            "--request-timeout",
            REQUEST_TIMEOUT_S,
            "--max-response-time",
            REQUEST_TIMEOUT_S,
            // An endless event stream: no answer to check, only a timeout.
            "--exclude-path",
            "/api/dashboard/stream",
            // One worker: hypothesis is not thread-safe, and with two its
            // own lambda-source cache failed a run ("AST constructor
            // recursion depth mismatch"), which is no answer of ours.
            "--workers",
            "1",
            // No example database: each run starts in a fresh directory, so
            // it would save nothing, and it is what turns on hypothesis's
            // Pareto-front optimiser, whose shrinker can crash with an
            // IndexError of its own (seen in hypothesis 6.170).
            "--generation-database",
            "none",
            "--no-color",
        ])
        // Its reports stay in the test's directory.
        .current_dir(orchestrator.dir.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = orchestrator.log();
    assert!(
        output.status.success(),
        "schemathesis found answers that break the OpenAPI document ({:?}):\n{stdout}\n{stderr}\n\
         orchestrator log:\n{log}",
        output.status
    );
    assert!(
        !log.contains("panicked"),
        "the orchestrator panicked under fuzzing:\n{log}"
    );
    assert!(
        stdout.contains("passed"),
        "schemathesis ran no test case:\n{stdout}"
    );
    eprintln!(
        "schemathesis passed in {:.0?}:\n{}",
        started.elapsed(),
        stdout
            .lines()
            .filter(|l| l.contains("generated") || l.contains("Tested"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
