// Workers: each worker's state, current task, heartbeat age and counts, and
// how evenly the finished tasks are spread across them; with workers as
// Kubernetes Jobs, each cluster's Jobs against its cap and its circuit.

import { get } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";

/** Coefficient of variation of the counts: 0 is perfectly even. */
function spread(counts) {
  if (counts.length < 2) return null;
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  if (!mean) return null;
  const variance = counts.reduce((a, b) => a + (b - mean) ** 2, 0) / counts.length;
  return Math.sqrt(variance) / mean;
}

export async function render(main, { live }) {
  const body = h("div");
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Workers")), body);

  async function load() {
    const { workers, clusters = [] } = await get("/api/workers");
    const done = workers.map((w) => w.tasks_completed + w.tasks_failed);
    const most = Math.max(1, ...done);
    const cv = spread(done);
    const clusterPanel = clusters.length === 0 ? [] : [
      h("section", { class: "panel", "aria-label": "Clusters" },
        h("h2", {}, `Kubernetes clusters (${clusters.length})`),
        table([
          ["Cluster", (c) => h("span", { class: "mono" }, c.name)],
          ["Jobs", (c) => bar(c.max_workers ? c.workers / c.max_workers : 0, `${fmt.count(c.workers)} / ${fmt.count(c.max_workers)}`), "wide"],
          ["Circuit", (c) => badge(c.up ? "up" : c.circuit.replace("_", " "))],
          ["Retry at", (c) => (c.retry_at ? new Date(c.retry_at * 1000).toLocaleTimeString() : "–")],
          ["Last error", (c) => c.last_error || "–"],
        ], clusters, { empty: "" })),
    ];
    replace(body,
      ...clusterPanel,
      h("section", { class: "panel" },
        h("h2", {}, `Workers (${workers.length})`),
        table([
          ["Worker", (w) => h("span", { class: "mono" }, w.worker_id)],
          ["State", (w) => badge(w.state)],
          ["Current task", (w) => (w.current_task ? h("a", { class: "mono", href: `#/task/${w.current_task}` }, `${w.current_task.slice(0, 8)}…`) : "–")],
          ["Heartbeat", (w) => `${fmt.seconds(w.last_heartbeat_age_ms / 1000)} ago`, "num"],
          ["Completed", (w) => fmt.count(w.tasks_completed), "num"],
          ["Failed", (w) => fmt.count(w.tasks_failed), "num"],
          ["Host", (w) => `${w.hostname}${w.pid ? ` (pid ${w.pid})` : ""}`],
        ], workers, { empty: "No worker is connected. Local workers start when tasks are queued." })),
      h("section", { class: "panel", "aria-label": "Load distribution" },
        h("h2", {}, "Tasks per worker"),
        h("p", { class: "muted" }, cv === null
          ? "Needs two workers with finished tasks to compare."
          : `Spread (coefficient of variation): ${fmt.percent(cv)} — ${cv < 0.25 ? "even" : cv < 0.5 ? "somewhat uneven" : "uneven"}.`),
        table([
          ["Worker", (w) => h("span", { class: "mono" }, w.worker_id)],
          ["Finished tasks", (w) => bar((w.tasks_completed + w.tasks_failed) / most, fmt.count(w.tasks_completed + w.tasks_failed)), "wide"],
        ], workers, { empty: "" })));
  }
  await load();
  let tick = 0;
  const onSecond = () => {
    tick += 1;
    if (tick % 2 === 0) load().catch(() => {});
  };
  live.addEventListener("second", onSecond);
  return () => live.removeEventListener("second", onSecond);
}
