// Models: the registry (status, versions, latest score and the score of each
// version), inference per model (items/s, latency per batch and per item,
// outcomes) with how evenly the work is spread across workers, and training
// durations per model type. Figures are this orchestrator's own
// (`GET /api/dashboard/models`, read from the metric families `/metrics`
// serves); rates are taken between two readings, percentiles since start.

import { get } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";

const POLL_MS = 5000;

/** Per second between two readings, or null without a previous one. */
function perSecond(now, before, elapsed) {
  if (before == null || !(elapsed > 0)) return null;
  return Math.max(0, now - before) / elapsed;
}

/** A score as a number with three decimals. */
const score = (v) => (v == null ? "–" : Number(v).toFixed(3));

export async function render(main) {
  const stats = h("dl", { class: "stats", "aria-label": "Models now" });
  const registry = h("section", { class: "panel", "data-panel": "models" });
  const inference = h("section", { class: "panel", "data-panel": "inference" });
  const spread = h("section", { class: "panel", "data-panel": "spread" });
  const training = h("section", { class: "panel", "data-panel": "training" });
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Models")),
    stats, registry, inference, spread, training);

  let previous = null;

  async function load() {
    const data = await get("/api/dashboard/models");
    const elapsed = previous ? data.now - previous.now : 0;
    const before = previous ? new Map(previous.inference.map((r) => [r.model, r])) : null;
    const rows = data.inference.map((r) => {
      const old = before ? before.get(r.model) : null;
      const requests = Object.values(r.requests).reduce((a, b) => a + b, 0);
      const bad = (r.requests.failed || 0) + (r.requests.timeout || 0);
      return {
        ...r,
        requestsTotal: requests,
        errorRatio: requests ? bad / requests : null,
        itemsRate: before ? perSecond(r.items, old ? old.items : 0, elapsed) : null,
        workerRates: Object.entries(r.workers).map(([worker, items]) => ({
          worker,
          items,
          rate: before ? perSecond(items, old && old.workers[worker] != null ? old.workers[worker] : 0, elapsed) : null,
        })),
      };
    });
    previous = data;

    const models = data.models;
    const count = (status) => models.filter((m) => m.status === status).length;
    const stat = (label, value, cls) => [h("div", { class: `stat ${cls || ""}` }, h("dt", {}, label), h("dd", {}, value))];
    const itemsRate = before ? rows.reduce((a, r) => a + (r.itemsRate || 0), 0) : null;
    replace(stats,
      stat("Models", fmt.count(models.length)),
      stat("Trained", fmt.count(count("trained")), "models-trained"),
      stat("Training", fmt.count(count("training")), "models-training"),
      stat("Degraded", fmt.count(count("degraded")), count("degraded") > 0 ? "models-degraded error" : "models-degraded"),
      stat("Items predicted", fmt.count(rows.reduce((a, r) => a + r.items, 0))),
      stat("Items/s", fmt.rate(itemsRate)));

    replace(registry,
      h("h2", {}, "Registry"),
      table([
        ["Model", (m) => h("span", { "data-model-id": m.id, title: m.id }, m.name)],
        ["Project", (m) => m.project_id, "mono"],
        ["Type", (m) => m.type, "mono"],
        ["Status", (m) => h("span", { title: m.status_reason || "" }, badge(m.status))],
        ["Versions", (m) => fmt.count(m.versions), "num"],
        ["Latest", (m) => (m.latest_version ? `v${m.latest_version}` : "–"), "num"],
        ["Score", (m) => (m.metric ? `${m.metric} ${score(m.score)}` : "–"), "num"],
        ["By version", (m) => h("span", { class: "mono", "data-quality": "" },
          m.quality.filter((q) => q.score != null).slice(-8).map((q) => `v${q.version} ${score(q.score)}`).join(" · ") || "–")],
        ["Updated", (m) => fmt.when(m.updated_at)],
      ], models, { empty: "No model yet: register one with `mimir-aip model create` (POST /api/ml-models) or import an ONNX model." }));

    const slowest = Math.max(1e-9, ...rows.map((r) => r.batch.p99 || 0));
    const secs = (v) => h("span", { "data-seconds": v ?? "" }, fmt.seconds(v));
    replace(inference,
      h("h2", {}, "Inference by model"),
      table([
        ["Model", (r) => r.model],
        ["Items", (r) => fmt.count(r.items), "num"],
        ["Items/s", (r) => fmt.rate(r.itemsRate), "num"],
        ["Requests", (r) => fmt.count(r.requestsTotal), "num"],
        ["Error ratio", (r) => h("span", { class: r.errorRatio > 0 ? "error" : "" }, fmt.percent(r.errorRatio)), "num"],
        ["Item p50", (r) => secs(r.item.p50), "num"],
        ["Item p99", (r) => secs(r.item.p99), "num"],
        ["Batch p50", (r) => secs(r.batch.p50), "num"],
        ["Batch p99", (r) => bar((r.batch.p99 || 0) / slowest, secs(r.batch.p99)), "wide"],
      ], rows, { empty: "No inference since the orchestrator started." }),
      h("p", { class: "muted" }, "Counts and percentiles since the orchestrator started; items per second over the last few seconds. The error ratio counts failed and timed-out inference tasks."));

    // How evenly each model's items are spread across the workers that ran them.
    const spreadRows = rows.flatMap((r) => {
      const total = r.items || 1;
      const even = r.workerRates.length ? 1 / r.workerRates.length : 0;
      return r.workerRates.map((w) => ({ model: r.model, ...w, share: w.items / total, even }));
    });
    replace(spread,
      h("h2", {}, "Spread across workers"),
      table([
        ["Model", (w) => w.model],
        ["Worker", (w) => h("span", { class: "mono", "data-worker": w.worker }, w.worker), "mono"],
        ["Items", (w) => fmt.count(w.items), "num"],
        ["Items/s", (w) => fmt.rate(w.rate), "num"],
        ["Share", (w) => bar(w.share, `${fmt.percent(w.share)} (even: ${fmt.percent(w.even)})`), "wide"],
      ], spreadRows, { empty: "No worker has predicted anything yet." }));

    replace(training,
      h("h2", {}, "Training durations by model type"),
      table([
        ["Model type", (t) => t.model_type, "mono"],
        ["Trainings", (t) => fmt.count(t.duration.count), "num"],
        ["Mean", (t) => secs(t.duration.count ? t.duration.sum / t.duration.count : null), "num"],
        ["p50", (t) => secs(t.duration.p50), "num"],
        ["p95", (t) => secs(t.duration.p95), "num"],
      ], data.training, { empty: "No training has completed since the orchestrator started." }));
  }

  await load();
  const timer = setInterval(() => load().catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}
