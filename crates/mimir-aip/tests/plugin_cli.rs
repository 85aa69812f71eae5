//! `mimir-aip plugin list` against a real orchestrator process.

mod harness;

use harness::{Orchestrator, stderr_failed, stdout_ok};
use serde_json::Value;

#[test]
fn plugin_list_shows_every_action_with_its_parameters() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let table = stdout_ok(&orchestrator.cli(&["plugin", "list"]));
    for id in [
        "core.fail",
        "core.log",
        "core.sleep",
        "file.read",
        "file.write",
        "http.request",
        "transform.jq",
    ] {
        assert!(table.contains(&format!("{id}: ")), "{id} missing:\n{table}");
    }
    for column in ["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"] {
        assert!(table.contains(column), "{column}:\n{table}");
    }
    assert!(
        table.contains("returns: {status, headers, body}"),
        "{table}"
    );

    let one = stdout_ok(&orchestrator.cli(&["plugin", "list", "core.sleep", "-o", "json"]));
    let one: Value = serde_json::from_str(&one).expect("JSON");
    let one = one.as_array().expect("a list of actions");
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["id"], "core.sleep");
    assert_eq!(one[0]["parameters"][0]["name"], "ms");
    assert_eq!(one[0]["parameters"][0]["type"], "integer");
    assert_eq!(one[0]["parameters"][0]["required"], true);

    let file = stdout_ok(&orchestrator.cli(&["plugin", "list", "file", "-o", "json"]));
    let file: Value = serde_json::from_str(&file).expect("JSON");
    let ids: Vec<&str> = file
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["file.read", "file.write"]);
}

#[test]
fn plugin_list_names_an_unknown_plugin_and_what_exists() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let error = stderr_failed(&orchestrator.cli(&["plugin", "list", "core.nap"]));
    assert!(error.contains("\"core.nap\""), "{error}");
    assert!(error.contains("core.sleep"), "{error}");
}
