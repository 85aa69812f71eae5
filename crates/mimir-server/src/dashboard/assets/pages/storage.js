// Storage: the storage configs and their health, latency and throughput by
// backend and operation, errors and retries, and connection pool use. The
// figures are this orchestrator's own (`GET /api/dashboard/storage`, read
// from the metric families `/metrics` serves); rates are taken between two
// readings, percentiles since start.

import { get } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";

const POLL_MS = 5000;

/** The figures' key: one row per backend and operation. */
const pairKey = (r) => `${r.backend}\u0000${r.operation}`;

/** Per second between two readings of a counter, or null without a previous one. */
function perSecond(now, before, field, elapsed) {
  if (!before || !(elapsed > 0)) return null;
  return Math.max(0, now[field] - before[field]) / elapsed;
}

export async function render(main) {
  const stats = h("dl", { class: "stats", "aria-label": "Storage now" });
  const configs = h("section", { class: "panel", "data-panel": "configs" });
  const operations = h("section", { class: "panel", "data-panel": "operations" });
  const pools = h("section", { class: "panel", "data-panel": "pools" });
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Storage")),
    stats, configs, operations, pools);

  let previous = null;

  async function load() {
    const data = await get("/api/dashboard/storage");
    const before = previous ? new Map(previous.operations.map((r) => [pairKey(r), r])) : null;
    const elapsed = previous ? data.now - previous.now : 0;
    const rows = data.operations.map((r) => {
      const old = before ? before.get(pairKey(r)) || { operations: 0, records: 0, errors: 0 } : null;
      return {
        ...r,
        opsRate: perSecond(r, old, "operations", elapsed),
        recordsRate: perSecond(r, old, "records", elapsed),
      };
    });
    previous = data;

    // Every storage config with the health its last check left.
    const health = data.configs || [];
    const up = health.filter((c) => c.health === "up").length;
    const down = health.filter((c) => c.health === "down").length;
    const total = (field) => rows.reduce((a, r) => a + r[field], 0);
    const rateTotal = (field) => (before ? rows.reduce((a, r) => a + (r[field] || 0), 0) : null);
    const stat = (label, value, cls) => [h("div", { class: `stat ${cls || ""}` }, h("dt", {}, label), h("dd", {}, value))];
    replace(stats,
      stat("Storage configs", fmt.count(health.length)),
      stat("Up", fmt.count(up), "storage-up"),
      stat("Down", fmt.count(down), down > 0 ? "storage-down error" : "storage-down"),
      stat("Operations/s", fmt.rate(rateTotal("opsRate"))),
      stat("Records/s", fmt.rate(rateTotal("recordsRate"))),
      stat("Error ratio", total("operations") ? fmt.percent(total("errors") / total("operations")) : "–"));

    replace(configs,
      h("h2", {}, "Storage configs"),
      table([
        ["Storage", (c) => h("span", { class: "mono", "data-storage-id": c.storage_id }, c.storage_id)],
        ["Project", (c) => c.project_id, "mono"],
        ["Backend", (c) => c.backend, "mono"],
        ["Health", (c) => badge(c.health)],
      ], health, { empty: "No storage config yet: create one with `mimir-aip storage create` (POST /api/storage/configs); active configs are checked every 30 s." }));

    const slowest = Math.max(1e-9, ...rows.map((r) => r.p99 || 0));
    const secs = (v) => h("span", { "data-seconds": v ?? "" }, fmt.seconds(v));
    replace(operations,
      h("h2", {}, "Latency and throughput by backend and operation"),
      table([
        ["Backend", (r) => r.backend, "mono"],
        ["Operation", (r) => r.operation, "mono"],
        ["Operations", (r) => fmt.count(r.operations), "num"],
        ["Ops/s", (r) => fmt.rate(r.opsRate), "num"],
        ["Records", (r) => fmt.count(r.records), "num"],
        ["Records/s", (r) => fmt.rate(r.recordsRate), "num"],
        ["Errors", (r) => h("span", { class: r.errors > 0 ? "error" : "" }, fmt.count(r.errors)), "num"],
        ["Error ratio", (r) => fmt.percent(r.operations ? r.errors / r.operations : null), "num"],
        ["Retries", (r) => fmt.count(r.retries), "num"],
        ["p50", (r) => secs(r.p50), "num"],
        ["p95", (r) => secs(r.p95), "num"],
        ["p99", (r) => bar((r.p99 || 0) / slowest, secs(r.p99)), "wide"],
      ], rows, { empty: "No storage operation since the orchestrator started." }),
      h("p", { class: "muted" }, "Counts and percentiles since the orchestrator started (percentiles interpolated within the latency buckets, as Prometheus's histogram_quantile does); per-second rates over the last few seconds. Latency includes retries; errors are operations that still failed after them."));

    replace(pools,
      h("h2", {}, "Connection pools"),
      table([
        ["Backend", (p) => p.backend, "mono"],
        ["In use", (p) => bar(p.max ? p.in_use / p.max : 0, `${fmt.count(p.in_use)} of ${fmt.count(p.max)}`), "wide"],
        ["Idle", (p) => fmt.count(p.idle), "num"],
      ], data.pools, { empty: "No connection pool is open: one opens per storage config with its first operation (PostgreSQL, MySQL, Redis, S3)." }),
      h("p", { class: "muted" }, "Connections of this orchestrator's pools, summed over the storage configs of each backend."));
  }

  await load();
  const timer = setInterval(() => load().catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}
