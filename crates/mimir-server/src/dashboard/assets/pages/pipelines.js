// Pipelines: execution time and error rate per pipeline, where the time goes
// step by step and plugin by plugin, and the latest executions.

import { get, query } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";

export async function render(main) {
  const body = h("div");
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Pipelines")), body);

  async function load() {
    // Run times come from the step times each attempt reported, kept in
    // ±4.5% log histograms with exact counts, sums and extremes: the mean is
    // exact and a percentile is within 4.5% and never outside the times seen.
    const [stats, { pipelines }, recent] = await Promise.all([
      get("/api/dashboard/pipelines"),
      get("/api/pipelines"),
      get(`/api/worktasks${query({ type: "pipeline_execution", limit: 20 })}`),
    ]);
    const names = new Map(pipelines.map((p) => [p.id, p.name]));
    const rows = stats.pipelines;
    const slowest = Math.max(1e-9, ...rows.map((r) => r.p99 || 0));
    const steps = stats.steps;
    const stepTotal = steps.reduce((a, s) => a + s.total, 0) || 1;
    const plugins = stats.plugins;
    const pipelineName = (id) => names.get(id) || id;
    // The figure as text, and as a number for whoever reads the page by program.
    const secs = (v) => h("span", { "data-seconds": v ?? "" }, fmt.seconds(v));
    const accuracy = `Percentiles within ±${fmt.percent(stats.relative_error)} of the exact value; means exact. Since the orchestrator started.`;
    replace(body,
      h("section", { class: "panel", "data-panel": "pipelines" },
        h("h2", {}, "Execution time by pipeline"),
        h("p", { class: "muted" }, "Each attempt is a run (a retried execution counts once per attempt); its time is the sum of its steps' times."),
        table([
          ["Pipeline", (r) => h("span", { title: r.pipeline }, pipelineName(r.pipeline))],
          ["Runs", (r) => fmt.count(r.completed + r.failed), "num"],
          ["Error rate", (r) => fmt.percent(r.failed / (r.completed + r.failed)), "num"],
          ["p50", (r) => secs(r.p50), "num"],
          ["Mean", (r) => secs(r.mean), "num"],
          ["p99", (r) => bar((r.p99 || 0) / slowest, secs(r.p99)), "wide"],
        ], rows, { empty: "No pipeline has run since the orchestrator started." }),
        h("p", { class: "muted" }, accuracy)),
      h("div", { class: "grid two" },
        h("section", { class: "panel", "data-panel": "steps" },
          h("h2", {}, "Where the time goes, by step"),
          table([
            ["Step", (s) => s.step],
            ["Plugin", (s) => `${s.plugin}.${s.action}`, "mono"],
            ["Runs", (s) => fmt.count(s.runs), "num"],
            ["Mean", (s) => secs(s.mean), "num"],
            ["Share of time", (s) => bar(s.total / stepTotal, fmt.percent(s.total / stepTotal)), "wide"],
          ], steps, { empty: "No step has run yet." })),
        h("section", { class: "panel", "data-panel": "plugins" },
          h("h2", {}, "Plugins compared"),
          table([
            ["Plugin", (p) => `${p.plugin}.${p.action}`, "mono"],
            ["Runs", (p) => fmt.count(p.runs), "num"],
            ["p50", (p) => secs(p.p50), "num"],
            ["Mean", (p) => secs(p.mean), "num"],
            ["p99", (p) => secs(p.p99), "num"],
            ["Errors", (p) => fmt.count(p.failed), "num"],
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
