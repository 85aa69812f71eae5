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
  "mimir_storage_errors",
];

async function readiness() {
  // Readiness answers 503 with its checks when not ready: read it either way.
  const response = await fetch("/ready");
  return response.json();
}

export async function render(main, { live }) {
  const ready = h("section", { class: "panel" });
  const tables = h("div");
  const chart = new LineChart({
    title: "Autoscaler: desired and active workers",
    unit: "count",
    series: [{ key: "desired_workers", label: "desired" }, { key: "workers", label: "active" }],
  });
  const decision = h("p", { class: "muted" });
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Health")),
    ready,
    h("section", { class: "panel" }, h("h2", {}, "Autoscaler"), decision, chart.el),
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
  };
  showDecision(overview.autoscaler);
  redraw();

  async function load() {
    const [status, text] = await Promise.all([
      readiness(),
      getText(`/api/dashboard/metrics${query({ family: FAMILIES.join(",") })}`),
    ]);
    replace(ready,
      h("h2", {}, "Readiness ", badge(status.status)),
      status.reason ? h("p", { class: "error" }, status.reason) : null,
      h("dl", { class: "details" }, Object.entries(status.checks || {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    const samples = parse(text);
    const store = histograms(samples, "mimir_store_call_duration_seconds", ["method"])
      .filter((s) => s.count > 0).sort((a, b) => (b.p99 || 0) - (a.p99 || 0));
    const storeErrors = sumBy(samples, "mimir_storage_errors_total", ["operation"]);
    const http = histograms(samples, "mimir_http_request_duration_seconds", ["route", "method"])
      .filter((s) => s.count > 0).sort((a, b) => (b.p99 || 0) - (a.p99 || 0));
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
            ["p50", (s) => fmt.seconds(s.p50), "num"],
            ["p99", (s) => fmt.seconds(s.p99), "num"],
          ], store, { empty: "No store call yet." }),
          h("p", { class: "muted" }, `Storage errors: ${fmt.count([...storeErrors.values()].reduce((a, e) => a + e.value, 0))}`)),
        h("section", { class: "panel" },
          h("h2", {}, "HTTP latency by route"),
          table([
            ["Route", (r) => `${r.labels.method} ${r.labels.route}`, "mono"],
            ["Requests", (r) => fmt.count(r.count), "num"],
            ["5xx", (r) => fmt.count(failures(r)), "num"],
            ["p50", (r) => fmt.seconds(r.p50), "num"],
            ["p99", (r) => fmt.seconds(r.p99), "num"],
          ], http, { empty: "No request measured yet." }))),
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
