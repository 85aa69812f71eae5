//! `mimir-aip storage` against a real orchestrator process: a config's life,
//! a CSV streamed in batches, retrieve, update and delete of records, and
//! the refusals a user meets.

mod harness;

use harness::{Orchestrator, stderr_failed, stdout_ok};
use serde_json::Value;

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout_ok(output)).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

#[test]
fn a_csv_goes_in_by_batches_and_comes_back_filtered_without_the_secret() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let created = json(&orchestrator.cli(&[
        "storage",
        "create",
        "--project",
        "shop",
        "--type",
        "filesystem",
        "--option",
        "base_path=shop",
        "--credential",
        &format!("password={secret}"),
        "-o",
        "json",
    ]));
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["config"]["credentials"]["password"], "[redacted]");

    // Ten rows in batches of three: four calls, all stored.
    let csv = orchestrator.dir.path().join("people.csv");
    let mut text = String::from("name,age,member\n");
    for i in 0..10 {
        text.push_str(&format!("person {i},{},{}\n", 20 + i * 3, i % 2 == 0));
    }
    std::fs::write(&csv, text).expect("write csv");
    let stored = stdout_ok(&orchestrator.cli(&[
        "storage",
        "store",
        &id,
        "--file",
        csv.to_str().expect("utf-8"),
        "--entity",
        "people",
        "--batch-size",
        "3",
    ]));
    assert!(
        stored.contains("stored 10 records in 4 batches"),
        "{stored}"
    );

    // Typed cells: age compares as a number.
    let found = json(&orchestrator.cli(&[
        "storage",
        "retrieve",
        &id,
        "--entity",
        "people",
        "--filter",
        "age gt 35",
        "--order-by",
        "age:desc",
        "-o",
        "json",
    ]));
    let ages: Vec<i64> = found
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["data"]["age"].as_i64().expect("age"))
        .collect();
    assert_eq!(ages, vec![47, 44, 41, 38]);
    let table = stdout_ok(&orchestrator.cli(&[
        "storage",
        "retrieve",
        &id,
        "--entity",
        "people",
        "--filter",
        "member eq true",
        "--limit",
        "2",
    ]));
    assert!(
        table.contains("person 0") && table.contains("person 2") && table.contains("2 records"),
        "{table}"
    );

    let updated = stdout_ok(&orchestrator.cli(&[
        "storage",
        "update-records",
        &id,
        "--entity",
        "people",
        "--filter",
        "age lt 26",
        "--set",
        "tier=\"young\"",
    ]));
    assert!(updated.contains("updated 2 records"), "{updated}");

    // No filter without --all is refused by the server, naming the fix.
    let refused =
        stderr_failed(&orchestrator.cli(&["storage", "delete-records", &id, "--entity", "people"]));
    assert!(refused.contains("\"all\": true"), "{refused}");
    let deleted = stdout_ok(&orchestrator.cli(&[
        "storage",
        "delete-records",
        &id,
        "--entity",
        "people",
        "--all",
    ]));
    assert!(deleted.contains("deleted 10 records"), "{deleted}");

    let listed = stdout_ok(&orchestrator.cli(&["storage", "list", "--project", "shop"]));
    assert!(
        listed.contains(&id) && listed.contains("filesystem"),
        "{listed}"
    );
    let health = stdout_ok(&orchestrator.cli(&["storage", "health", &id]));
    assert!(health.contains("healthy"), "{health}");
    stdout_ok(&orchestrator.cli(&["storage", "delete", &id]));
    assert!(
        !orchestrator.log().contains(&secret),
        "the secret reached the log"
    );
}

#[test]
fn bad_input_is_refused_by_name_and_stores_nothing() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let error = stderr_failed(&orchestrator.cli(&[
        "storage",
        "create",
        "--project",
        "shop",
        "--type",
        "sqlite",
    ]));
    assert!(error.contains("--type \"sqlite\""), "{error}");
    let error = stderr_failed(&orchestrator.cli(&[
        "storage",
        "create",
        "--project",
        "shop",
        "--type",
        "filesystem",
        "--option",
        "base_path=../escape",
    ]));
    assert!(error.contains("base_path"), "{error}");
    let listed = stdout_ok(&orchestrator.cli(&["storage", "list"]));
    assert!(listed.contains("no storage configs"), "{listed}");

    let created = json(&orchestrator.cli(&[
        "storage",
        "create",
        "--project",
        "shop",
        "--type",
        "filesystem",
        "--option",
        "base_path=b",
        "-o",
        "json",
    ]));
    let id = created["id"].as_str().expect("id").to_string();
    let bad = orchestrator.dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"a\": 1}\nnot json\n").expect("write");
    let error = stderr_failed(&orchestrator.cli(&[
        "storage",
        "store",
        &id,
        "--file",
        bad.to_str().expect("utf-8"),
    ]));
    assert!(error.contains("line 2"), "{error}");
    let error = stderr_failed(&orchestrator.cli(&[
        "storage",
        "retrieve",
        &id,
        "--filter",
        "name; DROP TABLE x eq 1",
    ]));
    assert!(
        error.contains("not a valid name") || error.contains("unknown"),
        "{error}"
    );
    let error =
        stderr_failed(&orchestrator.cli(&["storage", "retrieve", &id, "--filter", "age gt"]));
    assert!(error.contains("ATTRIBUTE OPERATOR VALUE"), "{error}");
    let found = json(&orchestrator.cli(&["storage", "retrieve", &id, "-o", "json"]));
    assert_eq!(found, serde_json::json!([]), "nothing was stored");
}
