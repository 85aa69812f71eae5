// Health: readiness, store latency by method, HTTP latency by route, and the
// autoscaler's decisions (desired against active workers, and why).

import { get, getText, query } from "../api.js";
import { LineChart, liveWindow } from "../charts.js";
import { badge, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";
import { histograms, parse, sumBy } from "../prometheus.js";

const FAMILIES = [
  "mimir_store_call_duration_seconds",
  "mimir_http_request_duration_seconds",
  "mimir_http_requests",
  "mimir_autoscaler_decisions",
  "mimir_store_errors",
];

async function readiness() {
  // Readiness answers 503 with its checks when not ready: read it either way.
  const response = await fetch("/ready");
  return response.json();
}

// Store and HTTP latencies come from Prometheus buckets: what is known
// exactly is the bucket bound a percentile lies under, so that is shown.
const atMost = (bound) => (bound === null || bound === undefined ? "–" : bound === Infinity ? "> largest bucket" : `≤ ${fmt.seconds(bound)}`);

export async function render(main, { live }) {
  const ready = h("section", { class: "panel" });
  const tables = h("div");
  const chart = new LineChart({
    title: "Autoscaler: desired and active workers",
    unit: "count",
    // The same colours as the overview's workers chart: active first, desired second.
    series: [{ key: "workers", label: "active" }, { key: "desired_workers", label: "desired" }],
  });
  const decision = h("p", { class: "muted" });
  const changes = h("div", { "data-panel": "scaling-changes" });
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Health")),
    ready,
    h("section", { class: "panel" }, h("h2", {}, "Autoscaler"), decision, chart.el, changes),
    tables);

  const overview = await get("/api/dashboard/overview");
  const t = overview.timeline.t || [];
  const columns = { desired_workers: overview.timeline.desired_workers || [], workers: overview.timeline.workers || [] };
  const redraw = () => {
    const [from, to] = liveWindow(t, 900, overview.now);
    chart.setData(t, columns, from, to);
  };
  const showDecision = (d) => {
    decision.textContent = d
      ? `Last decision: ${d.action} (${d.reason_code}) — ${d.reason}. Desired ${d.desired}, active ${d.active}, queue ${fmt.count(d.queue_length)}.`
      : "No local worker pool: workers are external.";
    const list = (d && d.changes) || [];
    chart.setMarks(list.map((c) => ({ t: c.at, label: `${fmt.clock(c.at)}: desired ${c.from} → ${c.to}: ${c.reason}` })));
    replace(changes, d ? table([
      ["When", (c) => fmt.clock(c.at)],
      ["Desired", (c) => `${c.from} → ${c.to}`, "num"],
      ["Why", (c) => c.reason],
    ], [...list].reverse(), { caption: "Why the desired count changed, latest first", empty: "The desired count has not changed since start." }) : null);
  };
  showDecision(overview.autoscaler);
  redraw();

  async function load() {
    const [status, text, fresh] = await Promise.all([
      readiness(),
      getText(`/api/dashboard/metrics${query({ family: FAMILIES.join(",") })}`),
      get(`/api/dashboard/overview${query({ since: Math.floor(Date.now() / 1000) + 1 })}`),
    ]);
    showDecision(fresh.autoscaler);
    replace(ready,
      h("h2", {}, "Readiness ", badge(status.status)),
      status.reason ? h("p", { class: "error" }, status.reason) : null,
      h("dl", { class: "details" }, Object.entries(status.checks || {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    const samples = parse(text);
    const store = histograms(samples, "mimir_store_call_duration_seconds", ["method"])
      .filter((s) => s.count > 0).sort((a, b) => (b.p99Bound || 0) - (a.p99Bound || 0));
    const storeErrors = sumBy(samples, "mimir_store_errors_total", ["method"]);
    const http = histograms(samples, "mimir_http_request_duration_seconds", ["route", "method"])
      .filter((s) => s.count > 0).sort((a, b) => (b.p99Bound || 0) - (a.p99Bound || 0));
    const requests = sumBy(samples, "mimir_http_requests_total", ["route", "method", "status"]);
    const failures = (r) => [...requests.values()]
      .filter((x) => x.labels.route === r.labels.route && x.labels.method === r.labels.method && Number(x.labels.status) >= 500)
      .reduce((a, x) => a + x.value, 0);
    const decisions = [...sumBy(samples, "mimir_autoscaler_decisions_total", ["action", "reason"]).values()]
      .filter((d) => d.value > 0).sort((a, b) => b.value - a.value);
    replace(tables,
      h("div", { class: "grid two" },
        h("section", { class: "panel" },
          h("h2", {}, "Store latency by method"),
          table([
            ["Method", (s) => s.labels.method, "mono"],
            ["Calls", (s) => fmt.count(s.count), "num"],
            ["p50", (s) => atMost(s.p50Bound), "num"],
            ["p99", (s) => atMost(s.p99Bound), "num"],
          ], store, { empty: "No store call yet." }),
          h("p", { class: "muted" }, `Store errors: ${fmt.count([...storeErrors.values()].reduce((a, e) => a + e.value, 0))}`)),
        h("section", { class: "panel" },
          h("h2", {}, "HTTP latency by route"),
          table([
            ["Route", (r) => `${r.labels.method} ${r.labels.route}`, "mono"],
            ["Requests", (r) => fmt.count(r.count), "num"],
            ["5xx", (r) => fmt.count(failures(r)), "num"],
            ["p50", (r) => atMost(r.p50Bound), "num"],
            ["p99", (r) => atMost(r.p99Bound), "num"],
          ], http, { empty: "No request measured yet." }),
          h("p", { class: "muted" }, "Percentiles shown as the Prometheus bucket bound they lie under."))),
      h("section", { class: "panel" },
        h("h2", {}, "Autoscaler decisions since start"),
        table([
          ["Action", (d) => d.labels.action],
          ["Reason", (d) => d.labels.reason, "mono"],
          ["Times", (d) => fmt.count(d.value), "num"],
        ], decisions, { empty: "No decision yet." })));
  }
  await load();
  const onSecond = (event) => {
    const { second } = event.detail;
    if (t.length && second.t <= t[t.length - 1]) return;
    t.push(second.t);
    columns.desired_workers.push(second.desired_workers);
    columns.workers.push(second.workers);
    // The last hour, as the server keeps.
    if (t.length > 3600) {
      t.shift();
      columns.desired_workers.shift();
      columns.workers.shift();
    }
    redraw();
  };
  live.addEventListener("second", onSecond);
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => {
    live.removeEventListener("second", onSecond);
    clearInterval(timer);
  };
}
