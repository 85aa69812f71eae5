// Pipelines: execution time and error rate per pipeline, where the time goes
// step by step and plugin by plugin, and the latest executions.

import { get, getText, query } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";
import { histograms, parse, sumBy } from "../prometheus.js";

const FAMILIES = [
  "mimir_pipeline_executions",
  "mimir_pipeline_execution_duration_seconds",
  "mimir_pipeline_step_duration_seconds",
  "mimir_plugin_errors",
];

export async function render(main) {
  const body = h("div");
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Pipelines")), body);

  async function load() {
    const [text, { pipelines }, recent] = await Promise.all([
      getText(`/api/dashboard/metrics${query({ family: FAMILIES.join(",") })}`),
      get("/api/pipelines"),
      get(`/api/worktasks${query({ type: "pipeline_execution", limit: 20 })}`),
    ]);
    const names = new Map(pipelines.map((p) => [p.id, p.name]));
    const samples = parse(text);
    const runs = sumBy(samples, "mimir_pipeline_executions_total", ["pipeline", "status"]);
    const byPipeline = new Map();
    for (const { labels, value } of runs.values()) {
      const entry = byPipeline.get(labels.pipeline) || { pipeline: labels.pipeline, completed: 0, failed: 0 };
      entry[labels.status === "completed" ? "completed" : "failed"] += value;
      byPipeline.set(labels.pipeline, entry);
    }
    for (const hist of histograms(samples, "mimir_pipeline_execution_duration_seconds", ["pipeline"])) {
      const entry = byPipeline.get(hist.labels.pipeline) || { pipeline: hist.labels.pipeline, completed: 0, failed: 0 };
      Object.assign(entry, { p50: hist.p50, p99: hist.p99, mean: hist.mean });
      byPipeline.set(hist.labels.pipeline, entry);
    }
    const rows = [...byPipeline.values()].filter((r) => r.completed + r.failed > 0)
      .sort((a, b) => (b.completed + b.failed) - (a.completed + a.failed));
    const slowest = Math.max(1e-9, ...rows.map((r) => r.p99 || 0));
    const steps = histograms(samples, "mimir_pipeline_step_duration_seconds", ["step", "plugin", "action"])
      .filter((s) => s.count > 0)
      .sort((a, b) => b.sum - a.sum);
    const stepTotal = steps.reduce((a, s) => a + s.sum, 0) || 1;
    const plugins = histograms(samples, "mimir_pipeline_step_duration_seconds", ["plugin", "action"]).filter((s) => s.count > 0);
    const errors = sumBy(samples, "mimir_plugin_errors_total", ["plugin", "action"]);
    const errorsOf = (p) => errors.get(JSON.stringify([p.labels.plugin, p.labels.action]))?.value || 0;
    const pipelineName = (id) => names.get(id) || id;
    replace(body,
      h("section", { class: "panel" },
        h("h2", {}, "Execution time by pipeline"),
        table([
          ["Pipeline", (r) => h("span", { title: r.pipeline }, pipelineName(r.pipeline))],
          ["Runs", (r) => fmt.count(r.completed + r.failed), "num"],
          ["Error rate", (r) => fmt.percent(r.failed / (r.completed + r.failed)), "num"],
          ["p50", (r) => fmt.seconds(r.p50), "num"],
          ["p99", (r) => bar((r.p99 || 0) / slowest, fmt.seconds(r.p99)), "wide"],
        ], rows, { empty: "No pipeline has run since the orchestrator started." })),
      h("div", { class: "grid two" },
        h("section", { class: "panel" },
          h("h2", {}, "Where the time goes, by step"),
          table([
            ["Step", (s) => s.labels.step],
            ["Plugin", (s) => `${s.labels.plugin}.${s.labels.action}`, "mono"],
            ["Runs", (s) => fmt.count(s.count), "num"],
            ["Mean", (s) => fmt.seconds(s.mean), "num"],
            ["Share of time", (s) => bar(s.sum / stepTotal, fmt.percent(s.sum / stepTotal)), "wide"],
          ], steps, { empty: "No step has run yet." })),
        h("section", { class: "panel" },
          h("h2", {}, "Plugins compared"),
          table([
            ["Plugin", (p) => `${p.labels.plugin}.${p.labels.action}`, "mono"],
            ["Runs", (p) => fmt.count(p.count), "num"],
            ["p50", (p) => fmt.seconds(p.p50), "num"],
            ["p99", (p) => fmt.seconds(p.p99), "num"],
            ["Errors", (p) => fmt.count(errorsOf(p)), "num"],
          ], plugins, { empty: "No plugin has run yet." }))),
      h("section", { class: "panel" },
        h("h2", {}, "Recent executions"),
        table([
          ["Task", (t) => h("a", { class: "mono", href: `#/task/${t.worktask_id}` }, `${t.worktask_id.slice(0, 8)}…`)],
          ["Pipeline", (t) => pipelineName(t.task_spec?.pipeline_id || "")],
          ["Status", (t) => badge(t.status)],
          ["Submitted", (t) => fmt.when(t.submitted_at)],
          ["Ran", (t) => fmt.seconds(fmt.between(t.started_at, t.completed_at)), "num"],
        ], recent.worktasks, { empty: "No pipeline execution yet." })));
  }
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
