//! The task and queue CLI against a real orchestrator process.

mod harness;

use harness::{Orchestrator, cli_in, stderr_failed, stdout_ok};
use serde_json::Value;

/// Writes a pipeline definition into the orchestrator's directory and runs
/// `pipeline create -f` on it.
fn create_from_file(
    orchestrator: &Orchestrator,
    name: &str,
    text: &str,
    extra: &[&str],
) -> std::process::Output {
    let file = orchestrator.dir.path().join(name);
    std::fs::write(&file, text).expect("write the definition");
    let path = file.to_str().expect("utf-8").to_string();
    orchestrator.cli(&[&["pipeline", "create", "-f", path.as_str()], extra].concat())
}

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout_ok(output)).expect("JSON output")
}

/// Creates a one-step pipeline whose log line reads `$.params.<param>`; its id.
fn pipeline_reading(orchestrator: &Orchestrator, param: &str) -> String {
    let text = format!(
        "project_id: p\nname: train\nsteps:\n  - {{name: say, plugin: core, action: log, parameters: {{message: \"$.params.{param}\"}}}}\n"
    );
    let created = json(&create_from_file(
        orchestrator,
        &format!("reads-{param}.yaml"),
        &text,
        &["-o", "json"],
    ));
    created["id"].as_str().expect("id").to_string()
}

#[test]
fn submit_get_list_cancel_and_wait() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let pipeline = pipeline_reading(&orchestrator, "epochs");
    let submitted = json(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "vision",
        "--priority",
        "7",
        "--pipeline",
        &pipeline,
        "--model",
        "resnet",
        "--param",
        "epochs=3",
        "--param",
        "name=run-a",
        "-o",
        "json",
    ]));
    assert_eq!(submitted["status"], "queued");
    assert_eq!(submitted["priority"], 7);
    assert_eq!(submitted["task_spec"]["model_id"], "resnet");
    assert_eq!(
        submitted["task_spec"]["parameters"],
        serde_json::json!({"epochs": 3, "name": "run-a"})
    );
    let id = submitted["worktask_id"].as_str().expect("id").to_string();

    let file = orchestrator.dir.path().join("task.json");
    std::fs::write(
        &file,
        format!(r#"{{"type":"pipeline_execution","project_id":"etl","priority":10,"task_spec":{{"pipeline_id":"{pipeline}","parameters":{{"epochs":1}}}}}}"#),
    )
    .expect("write");
    let from_file = json(&orchestrator.cli(&[
        "task",
        "submit",
        "-f",
        file.to_str().expect("utf-8"),
        "-o",
        "json",
    ]));
    assert_eq!(from_file["priority"], 10);

    let table = stdout_ok(&orchestrator.cli(&["task", "get", &id]));
    assert!(
        table.contains("ml_training") && table.contains("queued") && table.contains("vision"),
        "{table}"
    );

    let listed = json(&orchestrator.cli(&["task", "list", "--project", "vision", "-o", "json"]));
    assert_eq!(listed["worktasks"].as_array().map(Vec::len), Some(1));
    let table = stdout_ok(&orchestrator.cli(&["task", "list"]));
    assert!(
        table.contains(&id) && table.contains("pipeline_execution"),
        "{table}"
    );

    assert_eq!(
        stdout_ok(&orchestrator.cli(&["queue", "length"])).trim(),
        "2"
    );
    assert_eq!(
        json(&orchestrator.cli(&["queue", "length", "-o", "json"]))["queue_length"],
        2
    );

    let cancelled = json(&orchestrator.cli(&["task", "cancel", &id, "-o", "json"]));
    assert_eq!(cancelled["status"], "cancelled");
    // wait ends at once on a finished task, and fails because it did not complete.
    let waited = orchestrator.cli(&["task", "wait", &id]);
    assert!(!waited.status.success());
    assert!(String::from_utf8_lossy(&waited.stdout).contains("cancelled"));
    // A queued task that never runs (no workers): wait gives up after its timeout.
    let other = from_file["worktask_id"].as_str().expect("id");
    let timed_out = orchestrator.cli(&["task", "wait", other, "--timeout", "1"]);
    assert!(stderr_failed(&timed_out).contains("still queued"));
}

#[test]
fn bad_input_gets_a_message_naming_the_problem() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_cooking",
        "--project",
        "p",
        "--pipeline",
        "any",
    ]));
    assert!(
        stderr.contains("type") && stderr.contains("ml_cooking"),
        "{stderr}"
    );
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
        "--priority",
        "12",
        "--pipeline",
        "any",
    ]));
    assert!(stderr.contains("priority"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["task", "submit", "--type", "ml_training"]));
    assert!(stderr.contains("--project"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
    ]));
    assert!(stderr.contains("--pipeline"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
        "--pipeline",
        "0191d1a4-0000-7000-8000-00000000beef",
    ]));
    assert!(
        stderr.contains("0191d1a4-0000-7000-8000-00000000beef")
            && stderr.contains("task_spec.pipeline_id"),
        "{stderr}"
    );
    let pipeline = pipeline_reading(&orchestrator, "url");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "pipeline_execution",
        "--project",
        "p",
        "--pipeline",
        &pipeline,
    ]));
    assert!(stderr.contains("task_spec.parameters.url"), "{stderr}");
    let stderr =
        stderr_failed(&orchestrator.cli(&["task", "get", "0191d1a4-0000-7000-8000-000000000000"]));
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["task", "get", "nope"]));
    assert!(stderr.contains("nope"), "{stderr}");
    assert_eq!(
        stdout_ok(&orchestrator.cli(&["queue", "length"])).trim(),
        "0",
        "nothing stored"
    );
}

#[test]
fn task_why_says_why_a_queued_task_waits_and_names_an_unknown_id() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let pipeline = pipeline_reading(&orchestrator, "epochs");
    let submitted = json(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
        "--pipeline",
        &pipeline,
        "--param",
        "epochs=1",
        "-o",
        "json",
    ]));
    let id = submitted["worktask_id"].as_str().expect("id");

    let stdout = stdout_ok(&orchestrator.cli(&["task", "why", id]));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty(), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("no_worker_for_type: ") || l.starts_with("queue_position: ")),
        "{stdout}"
    );
    assert!(
        lines.iter().all(|l| l.contains(": ")),
        "one `code: message` line per reason: {stdout}"
    );

    let explained = json(&orchestrator.cli(&["task", "why", id, "-o", "json"]));
    assert_eq!(explained["worktask_id"], id);
    assert_eq!(explained["status"], "queued");
    assert_eq!(
        explained["reasons"].as_array().map(Vec::len),
        Some(lines.len()),
        "{explained}"
    );

    let unknown = "0191d1a4-0000-7000-8000-000000000000";
    let stderr = stderr_failed(&orchestrator.cli(&["task", "why", unknown]));
    assert!(
        stderr.contains("not found") && stderr.contains(unknown),
        "{stderr}"
    );
    let stderr = stderr_failed(&orchestrator.cli(&["task", "why", "nope"]));
    assert!(stderr.contains("nope"), "{stderr}");

    let url = format!("http://127.0.0.1:{}", harness::free_port());
    let stderr = stderr_failed(&cli_in(
        orchestrator.dir.path(),
        &["task", "why", id, "--orchestrator", &url],
    ));
    assert!(stderr.contains(&url), "{stderr}");
}

#[test]
fn an_unreachable_orchestrator_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}", harness::free_port());
    let stderr = stderr_failed(&cli_in(
        dir.path(),
        &["queue", "length", "--orchestrator", &url],
    ));
    assert!(stderr.contains(&url), "{stderr}");
    // Said once, with the OS error, not reqwest's wrapping twice over.
    assert_eq!(stderr.matches(&url).count(), 1, "{stderr}");
    assert!(!stderr.contains("error sending request"), "{stderr}");
    assert!(
        stderr.contains("Connection refused (os error 111)"),
        "{stderr}"
    );
}

#[test]
fn pipeline_create_list_get_and_run_with_follow() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let greet = "project_id: p1\nname: greet\ntype: processing\nsteps:\n  - {name: say, plugin: core, action: log, parameters: {message: \"$.params.who\"}}\n  - {name: shout, plugin: transform, action: jq, parameters: {program: \".who | ascii_upcase\", input: \"$.params\"}}\n";
    let created = json(&create_from_file(
        &orchestrator,
        "greet.yaml",
        greet,
        &["-o", "json"],
    ));
    let id = created["id"].as_str().expect("id").to_string();
    let listed = stdout_ok(&orchestrator.cli(&["pipeline", "list", "--project", "p1"]));
    assert!(listed.contains(&id) && listed.contains("greet"), "{listed}");
    let shown = stdout_ok(&orchestrator.cli(&["pipeline", "get", &id]));
    assert!(
        shown.contains("say core.log") && shown.contains("shout transform.jq"),
        "{shown}"
    );
    let run = orchestrator.cli(&["pipeline", "run", &id, "--param", "who=ada", "--follow"]);
    let out = stdout_ok(&run);
    assert!(out.contains("completed"), "{out}");
    assert!(
        out.contains("shout") && out.contains("transform.jq"),
        "{out}"
    );
    let bad = "project_id: p1\nname: bad\nsteps:\n  - {name: a, plugin: core, action: nap}\n";
    let stderr = stderr_failed(&create_from_file(&orchestrator, "bad.yaml", bad, &[]));
    assert!(
        stderr.contains("nap") && stderr.contains("steps[0]"),
        "{stderr}"
    );
}

#[test]
fn follow_shows_steps_while_a_long_pipeline_runs() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let steps = r#"[{"name":"first","plugin":"core","action":"sleep","parameters":{"ms":400}},
                    {"name":"second","plugin":"core","action":"sleep","parameters":{"ms":800}}]"#;
    let slow = format!(r#"{{"project_id":"p","name":"slow","steps":{steps}}}"#);
    let created = json(&create_from_file(
        &orchestrator,
        "slow.json",
        &slow,
        &["-o", "json"],
    ));
    let id = created["id"].as_str().expect("id");
    let run = orchestrator.cli(&["pipeline", "run", id, "--follow"]);
    stdout_ok(&run);
    let progress = String::from_utf8_lossy(&run.stderr);
    assert!(
        progress.contains("step first core.sleep completed"),
        "live step progress: {progress}"
    );
    assert!(progress.contains("executing"), "{progress}");
}

#[test]
fn empty_lists_say_so_and_status_groups_filter() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    for (list, empty) in [
        (&["task", "list"][..], "no tasks"),
        (&["pipeline", "list"][..], "no pipelines"),
        (&["project", "list"][..], "no projects"),
    ] {
        assert_eq!(stdout_ok(&orchestrator.cli(list)).trim(), empty, "{list:?}");
    }
    let pipeline = pipeline_reading(&orchestrator, "x");
    let submitted = json(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "pipeline_execution",
        "--project",
        "p",
        "--pipeline",
        &pipeline,
        "--param",
        "x=1",
        "-o",
        "json",
    ]));
    let id = submitted["worktask_id"].as_str().expect("id");
    let listed = |status: &str| stdout_ok(&orchestrator.cli(&["task", "list", "--status", status]));
    assert_eq!(listed("running").trim(), "no tasks");
    for status in ["queued", "waiting", "failed,queued", "running,waiting"] {
        assert!(listed(status).contains(id), "--status {status}");
    }
    let stderr = stderr_failed(&orchestrator.cli(&["task", "list", "--status", "runing"]));
    assert!(
        stderr.contains("field: status") && stderr.contains("runing"),
        "{stderr}"
    );
}

#[test]
fn a_failed_pipeline_shows_aligned_steps_human_durations_and_whole_errors_when_wide() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let ending = "and this is where the message ends";
    let message = format!("the upstream service answered with something nobody expected, {ending}");
    let text = format!(
        "project_id: p\nname: fails\nsteps:\n  - {{name: say, plugin: core, action: log, parameters: {{message: hi}}}}\n  - {{name: pick, plugin: transform, action: jq, parameters: {{program: \".\", input: \"$.params\"}}}}\n  - {{name: boom, plugin: core, action: fail, parameters: {{message: \"{message}\", permanent: true}}}}\n"
    );
    let created = json(&create_from_file(
        &orchestrator,
        "fails.yaml",
        &text,
        &["-o", "json"],
    ));
    let id = created["id"].as_str().expect("id");
    let run = orchestrator.cli(&["pipeline", "run", id, "--follow"]);
    assert!(!run.status.success(), "a failed execution exits non-zero");
    let out = String::from_utf8_lossy(&run.stdout);
    let line = |action: &str| {
        out.lines()
            .find(|l| l.contains(action))
            .unwrap_or_else(|| panic!("no {action} line in {out}"))
    };
    let (log, jq, fail) = (line("core.log"), line("transform.jq"), line("core.fail"));
    assert_eq!(log.find("core.log"), jq.find("transform.jq"), "{out}");
    assert_eq!(jq.find("transform.jq"), fail.find("core.fail"), "{out}");
    assert_eq!(log.find("completed"), fail.find("failed"), "{out}");
    for step in [log, jq] {
        let human = ["µs", "ms", " s"]
            .iter()
            .any(|unit| step.trim_end().ends_with(unit));
        assert!(human, "a human duration ends the line: {step:?}");
        assert!(!step.contains(".0 ms"), "{step:?}");
    }

    let narrow = stdout_ok(&orchestrator.cli(&["task", "list", "--status", "failed"]));
    assert!(
        narrow.contains("the upstream") && narrow.contains('…'),
        "{narrow}"
    );
    assert!(!narrow.contains(ending), "cut at 60 characters: {narrow}");
    let wide = stdout_ok(&orchestrator.cli(&["task", "list", "--status", "failed", "--wide"]));
    assert!(wide.contains(ending), "{wide}");
}

#[test]
fn pipeline_update_and_delete_refuse_bad_input() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let id = pipeline_reading(&orchestrator, "who");
    let file = |name: &str, text: &str| {
        let path = orchestrator.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let renamed = file(
        "renamed.yaml",
        "project_id: p\nname: renamed\nsteps:\n  - {name: only, plugin: core, action: log, parameters: {message: hi}}\n",
    );
    let updated =
        json(&orchestrator.cli(&["pipeline", "update", &id, "-f", &renamed, "-o", "json"]));
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["name"], "renamed");
    assert!(stdout_ok(&orchestrator.cli(&["pipeline", "get", &id])).contains("only core.log"));

    let unknown_action = file(
        "bad.yaml",
        "project_id: p\nname: bad\nsteps:\n  - {name: a, plugin: core, action: nap}\n",
    );
    let stderr =
        stderr_failed(&orchestrator.cli(&["pipeline", "update", &id, "-f", &unknown_action]));
    assert!(
        stderr.contains("nap") && stderr.contains("steps[0]"),
        "{stderr}"
    );
    let not_a_mapping = file("list.yaml", "- just\n- a list\n");
    let stderr =
        stderr_failed(&orchestrator.cli(&["pipeline", "update", &id, "-f", &not_a_mapping]));
    assert!(
        stderr.contains("list.yaml") && stderr.contains("mapping"),
        "{stderr}"
    );
    let stderr =
        stderr_failed(&orchestrator.cli(&["pipeline", "update", &id, "-f", "missing.yaml"]));
    assert!(stderr.contains("cannot read missing.yaml"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "pipeline",
        "update",
        "0191d1a4-0000-7000-8000-00000000beef",
        "-f",
        &renamed,
    ]));
    assert!(stderr.contains("not found"), "{stderr}");
    assert_eq!(
        json(&orchestrator.cli(&["pipeline", "get", &id, "-o", "json"]))["name"],
        "renamed",
        "refused updates change nothing"
    );

    let deleted = stdout_ok(&orchestrator.cli(&["pipeline", "delete", &id]));
    assert!(
        deleted.contains(&format!("deleted pipeline {id}")),
        "{deleted}"
    );
    let stderr = stderr_failed(&orchestrator.cli(&["pipeline", "get", &id]));
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["pipeline", "delete", &id]));
    assert!(stderr.contains("not found"), "{stderr}");
    let too_long = "x".repeat(300);
    let stderr = stderr_failed(&orchestrator.cli(&["pipeline", "delete", &too_long]));
    assert!(stderr.contains("field: id"), "{stderr}");
}

#[test]
fn project_commands_list_projects_in_use_and_refuse_bad_input() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let pipeline = pipeline_reading(&orchestrator, "x");
    for project in ["p1", "p2", "p2"] {
        stdout_ok(&orchestrator.cli(&[
            "task",
            "submit",
            "--type",
            "pipeline_execution",
            "--project",
            project,
            "--pipeline",
            &pipeline,
            "--param",
            "x=1",
        ]));
    }
    let listed = json(&orchestrator.cli(&["project", "list", "-o", "json"]));
    let counts: Vec<(String, u64, u64, bool)> = listed["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id").into(),
                p["tasks"].as_u64().expect("tasks"),
                p["pipelines"].as_u64().expect("pipelines"),
                p["registered"].as_bool().expect("registered"),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("p".into(), 0, 1, false),
            ("p1".into(), 1, 0, false),
            ("p2".into(), 2, 0, false)
        ]
    );
    let table = stdout_ok(&orchestrator.cli(&["project", "list"]));
    assert!(
        table.contains("p2") && table.contains("(not registered)"),
        "{table}"
    );

    let created = stdout_ok(&orchestrator.cli(&[
        "project",
        "create",
        "--id",
        "p2",
        "--name",
        "Vision",
        "--description",
        "image models",
    ]));
    assert!(created.contains("p2 Vision"), "{created}");
    let shown = stdout_ok(&orchestrator.cli(&["project", "get", "p2"]));
    assert!(
        shown.contains("Vision") && shown.contains("image models"),
        "{shown}"
    );
    let table = stdout_ok(&orchestrator.cli(&["project", "list"]));
    let row = table
        .lines()
        .find(|l| l.contains("Vision"))
        .expect("p2's row");
    assert!(row.contains("p2") && row.contains('2'), "{table}");
    let paged = stdout_ok(&orchestrator.cli(&["project", "list", "--limit", "1"]));
    assert!(paged.contains("more: --cursor "), "{paged}");

    let stderr =
        stderr_failed(&orchestrator.cli(&["project", "create", "--id", "p2", "--name", "Again"]));
    assert!(stderr.contains("already exists"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["project", "create", "--name", " "]));
    assert!(stderr.contains("--name"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "project",
        "create",
        "--id",
        &"x".repeat(300),
        "--name",
        "Long",
    ]));
    assert!(stderr.contains("field: id"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["project", "create", "--id", "p9"]));
    assert!(stderr.contains("--name"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["project", "get", "nope"]));
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["project", "list", "--limit", "0"]));
    assert!(stderr.contains("field: limit"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["project", "list", "--cursor", "junk"]));
    assert!(stderr.contains("field: cursor"), "{stderr}");

    let deleted = stdout_ok(&orchestrator.cli(&["project", "delete", "p2"]));
    assert!(deleted.contains("deleted project p2"), "{deleted}");
    let stderr = stderr_failed(&orchestrator.cli(&["project", "delete", "p2"]));
    assert!(stderr.contains("not found"), "{stderr}");
    // Its tasks still use it, so it is still listed, unregistered.
    let table = stdout_ok(&orchestrator.cli(&["project", "list"]));
    let row = table
        .lines()
        .find(|l| l.contains(" p2 "))
        .expect("p2 still listed");
    assert!(row.contains("(not registered)"), "{table}");
}

#[test]
fn bench_soak_refuses_a_run_it_cannot_watch_or_compare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = stderr_failed(&cli_in(dir.path(), &["bench", "soak", "--minutes", "10"]));
    assert!(stderr.contains("--spawn"), "{stderr}");
    let stderr = stderr_failed(&cli_in(
        dir.path(),
        &[
            "bench",
            "soak",
            "--spawn",
            "--minutes",
            "3",
            "--warm-up",
            "5",
        ],
    ));
    assert!(
        stderr.contains("--minutes 3") && stderr.contains("--warm-up 5"),
        "{stderr}"
    );
    let stderr = stderr_failed(&cli_in(dir.path(), &["bench", "soak", "--minutes", "0"]));
    assert!(stderr.contains("--minutes"), "{stderr}");
    let stderr = stderr_failed(&cli_in(dir.path(), &["bench", "soak", "--batch", "many"]));
    assert!(
        stderr.contains("--batch") && stderr.contains("many"),
        "{stderr}"
    );
    // Refused before anything was started: no data directory left behind.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}
