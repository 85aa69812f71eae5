//! `mimir-aip model` against a real orchestrator process: a model's life
//! (create, list, get, update, versions, delete), a training submitted and
//! cancelled (the model then `failed`), and the refusals a user meets: a
//! second training, inference of an untrained model, an invalid ONNX file,
//! a storage config of another project.

mod harness;

use harness::{Orchestrator, stderr_failed, stdout_ok};
use serde_json::Value;
use std::time::{Duration, Instant};

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout_ok(output)).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

fn storage(orchestrator: &Orchestrator, project: &str) -> String {
    let created = json(&orchestrator.cli(&[
        "storage",
        "create",
        "--project",
        project,
        "--type",
        "filesystem",
        "--option",
        &format!("base_path={project}"),
        "-o",
        "json",
    ]));
    created["id"].as_str().expect("id").to_string()
}

#[test]
fn a_model_is_created_trained_cancelled_and_deleted_and_refusals_say_why() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let mine = storage(&orchestrator, "shop");
    let theirs = storage(&orchestrator, "other");
    let created = json(&orchestrator.cli(&[
        "model",
        "create",
        "--project",
        "shop",
        "--name",
        "churn",
        "--type",
        "random_forest",
        "--label",
        "churned",
        "--feature",
        "age,visits",
        "--param",
        "n_trees=20",
        "-o",
        "json",
    ]));
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["status"], "draft");
    assert_eq!(created["training_config"]["label_column"], "churned");
    assert_eq!(
        created["training_config"]["feature_columns"],
        serde_json::json!(["age", "visits"])
    );
    assert_eq!(created["training_config"]["hyperparameters"]["n_trees"], 20);

    let table = stdout_ok(&orchestrator.cli(&["model", "list", "--project", "shop"]));
    assert!(
        table.contains("churn") && table.contains("random_forest") && table.contains("draft"),
        "{table}"
    );
    let shown = stdout_ok(&orchestrator.cli(&["model", "get", &id]));
    assert!(shown.contains("label:    churned"), "{shown}");
    let updated = json(&orchestrator.cli(&[
        "model", "update", &id, "--name", "churn v2", "--seed", "9", "-o", "json",
    ]));
    assert_eq!(updated["name"], "churn v2");
    assert_eq!(updated["training_config"]["random_seed"], 9);
    assert_eq!(
        updated["training_config"]["label_column"], "churned",
        "the flags not given are kept"
    );
    let versions = stdout_ok(&orchestrator.cli(&["model", "versions", &id]));
    assert!(versions.contains("no versions"), "{versions}");

    // Refusals, each naming what is wrong.
    let refused = stderr_failed(&orchestrator.cli(&["model", "train", &id, "--storage", &theirs]));
    assert!(refused.contains("another project"), "{refused}");
    let refused = stderr_failed(&orchestrator.cli(&[
        "model",
        "train",
        &id,
        "--storage",
        &mine,
        "--split",
        "1.5",
    ]));
    assert!(refused.contains("train_test_split"), "{refused}");
    let records = orchestrator.dir.path().join("rows.json");
    std::fs::write(&records, r#"[{"age": 30, "visits": 2}]"#).expect("write records");
    let refused = stderr_failed(&orchestrator.cli(&[
        "model",
        "infer",
        &id,
        "--records",
        records.to_str().expect("utf-8"),
    ]));
    assert!(refused.contains("no version yet"), "{refused}");
    let onnx = orchestrator.dir.path().join("model.onnx");
    std::fs::write(&onnx, b"not an onnx file").expect("write onnx");
    let refused = stderr_failed(&orchestrator.cli(&[
        "model",
        "import",
        "--project",
        "shop",
        "--name",
        "imported",
        "--file",
        onnx.to_str().expect("utf-8"),
        "--feature",
        "age,visits",
    ]));
    assert!(refused.contains("artifact_base64"), "{refused}");

    // A training: its task, then a second one refused while it runs.
    let task = json(&orchestrator.cli(&[
        "model",
        "train",
        &id,
        "--storage",
        &mine,
        "--priority",
        "6",
        "-o",
        "json",
    ]));
    assert_eq!(task["type"], "ml_training");
    assert_eq!(task["priority"], 6);
    let task_id = task["worktask_id"].as_str().expect("task id").to_string();
    let refused = stderr_failed(&orchestrator.cli(&["model", "train", &id, "--storage", &mine]));
    assert!(refused.contains("already training"), "{refused}");
    let refused = stderr_failed(&orchestrator.cli(&["model", "delete", &id]));
    assert!(refused.contains("training"), "{refused}");
    // Nobody runs it: --wait gives up when told to.
    let gave_up = stderr_failed(&orchestrator.cli(&[
        "model",
        "train",
        &id,
        "--storage",
        &mine,
        "--wait",
        "--timeout",
        "1",
    ]));
    assert!(gave_up.contains("already training"), "{gave_up}");

    stdout_ok(&orchestrator.cli(&["task", "cancel", &task_id]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let model = json(&orchestrator.cli(&["model", "get", &id, "-o", "json"]));
        if model["status"] == "failed" {
            assert!(
                model["status_reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("cancelled"),
                "{model}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{model}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let deleted = stdout_ok(&orchestrator.cli(&["model", "delete", &id]));
    assert!(deleted.contains("deleted model"), "{deleted}");
    let listed = json(&orchestrator.cli(&["model", "list", "-o", "json"]));
    assert_eq!(listed["models"], serde_json::json!([]));
}
