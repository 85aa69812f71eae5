// Overview: the last hour second by second (queue, workers, throughput,
// outcomes, waits and run times), live, with a window picker and drag-to-zoom
// shared by every chart, and the window's figures beside each chart.

import { get, query } from "../api.js";
import { LineChart, liveWindow } from "../charts.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";

const WINDOWS = [[300, "5 min"], [900, "15 min"], [3600, "1 hour"]];
const KEEP = 3600;

const CHARTS = [
  { id: "queue", title: "Queue depth", unit: "count", series: [{ key: "queue_depth", label: "queued" }, { key: "running", label: "running" }] },
  { id: "workers", title: "Workers", unit: "count", series: [{ key: "workers", label: "active" }, { key: "desired_workers", label: "desired" }] },
  { id: "flow", title: "Enqueue and dequeue rate", unit: "rate", series: [{ key: "enqueued", label: "enqueued" }, { key: "dequeued", label: "dequeued" }] },
  { id: "outcomes", title: "Completions, failures and retries", unit: "rate", series: [{ key: "completed", label: "completed" }, { key: "failed", label: "failed" }, { key: "retried", label: "retried" }] },
  // Waits and run times span decades (a 1 ms task beside an 84 s one): on a
  // log scale the bulk stays visible next to an outlier.
  { id: "wait", title: "Queue wait", unit: "seconds", scale: "log", series: [{ key: "wait_p50", label: "p50" }, { key: "wait_p99", label: "p99" }] },
  { id: "duration", title: "Task duration", unit: "seconds", scale: "log", series: [{ key: "duration_p50", label: "p50" }, { key: "duration_p99", label: "p99" }] },
];

export async function render(main, { live }) {
  const data = await get("/api/dashboard/overview");
  const state = {
    t: [],
    columns: {},
    span: 900,
    zoom: null,
    summary: data.recent,
  };
  const columnsOf = (timeline) => {
    state.t = timeline.t || [];
    state.columns = {};
    for (const chart of CHARTS) for (const s of chart.series) state.columns[s.key] = timeline[s.key] || [];
  };
  columnsOf(data.timeline);

  const statusStrip = h("dl", { class: "stats", "aria-label": "All tasks in the store, by status, now" });
  const scaling = h("p", { class: "muted scaling" });
  const windowButtons = WINDOWS.map(([span, label]) =>
    h("button", { type: "button", "aria-pressed": String(span === state.span), onclick: () => pickWindow(span) }, label));
  const reset = h("button", { type: "button", class: "reset", hidden: true, onclick: () => setZoom(null) }, "Reset zoom");
  const windowLabel = h("span", { class: "muted window-label" });
  const charts = CHARTS.map((spec) => {
    const chart = new LineChart({ ...spec, onZoom: (from, to) => setZoom([from, to]), onReset: () => setZoom(null) });
    chart.el.dataset.chart = spec.id;
    return chart;
  });
  replace(main,
    h("div", { class: "page-head" },
      h("h1", {}, "Overview"),
      h("div", { class: "toolbar", role: "group", "aria-label": "Time window" }, windowButtons, reset, windowLabel)),
    h("h2", { class: "strip-title" }, "All tasks in the store, by status, now"),
    statusStrip,
    h("div", { class: "grid charts" }, charts.map((c) => c.el)));
  const workersChart = charts[CHARTS.findIndex((c) => c.id === "workers")];
  workersChart.el.append(scaling);

  // Why the desired count last changed, on the chart (a mark per change,
  // its reason as tooltip) and in words under it.
  function drawScaling(autoscaler) {
    if (!autoscaler) {
      scaling.textContent = "No local worker pool: workers are external.";
      return;
    }
    const changes = autoscaler.changes || [];
    workersChart.setMarks(changes.map((c) => ({ t: c.at, label: `${fmt.clock(c.at)}: desired ${c.from} → ${c.to}: ${c.reason}` })));
    const last = changes[changes.length - 1];
    scaling.textContent = last
      ? `Desired ${last.from} → ${last.to} at ${fmt.clock(last.at)}: ${last.reason}. Now: ${autoscaler.reason}.`
      : `Desired ${autoscaler.desired}: ${autoscaler.reason}.`;
  }

  const windowRange = () => state.zoom || liveWindow(state.t, state.span, data.now);

  const rate = (key) => (state.summary && state.summary.seconds ? state.summary[key] / state.summary.seconds : null);

  function drawFigures() {
    const last = (key) => {
      const column = state.columns[key];
      return column && column.length ? column[column.length - 1] : null;
    };
    const s = state.summary || {};
    const figures = {
      queue: [["queued", fmt.count(last("queue_depth")), last("queue_depth")], ["running", fmt.count(last("running")), last("running")]],
      workers: [["active", fmt.count(last("workers")), last("workers")], ["desired", fmt.count(last("desired_workers")), last("desired_workers")]],
      flow: [["in", fmt.rate(rate("enqueued")), rate("enqueued")], ["out", fmt.rate(rate("dequeued")), rate("dequeued")]],
      outcomes: [["done", fmt.rate(rate("completed")), rate("completed")], ["failed", fmt.rate(rate("failed")), rate("failed")], ["retried", fmt.rate(rate("retried")), rate("retried")]],
      wait: [["p50", fmt.seconds(s.wait_p50), s.wait_p50], ["p99", fmt.seconds(s.wait_p99), s.wait_p99]],
      duration: [["p50", fmt.seconds(s.duration_p50), s.duration_p50], ["p99", fmt.seconds(s.duration_p99), s.duration_p99]],
    };
    CHARTS.forEach((spec, i) => charts[i].setNow(figures[spec.id]));
    const [from, to] = windowRange();
    windowLabel.textContent = state.zoom
      ? `${fmt.clock(from)} – ${fmt.clock(to)}; chart figures over this range`
      : "chart figures over the last minute";
  }

  function drawCharts() {
    const [from, to] = windowRange();
    for (const chart of charts) chart.setData(state.t, state.columns, from, to);
    drawFigures();
  }

  async function loadSummary() {
    const range = state.zoom;
    if (!range) return;
    const summary = await get(`/api/dashboard/summary${query({ from: range[0], to: range[1] })}`);
    // Only for the range still shown: the user may have zoomed again or reset.
    if (state.zoom !== range) return;
    state.summary = summary;
    drawFigures();
  }

  function pickWindow(span) {
    state.span = span;
    windowButtons.forEach((b, i) => b.setAttribute("aria-pressed", String(WINDOWS[i][0] === span)));
    setZoom(null);
  }

  function setZoom(range) {
    // Never wider than the history kept, never narrower than two seconds.
    if (range) {
      const newest = state.t.length ? state.t[state.t.length - 1] : data.now;
      const from = Math.max(range[0], newest - KEEP + 1);
      const to = Math.min(range[1], newest);
      range = to - from >= 2 ? [from, to] : null;
    }
    state.zoom = range;
    reset.hidden = !range;
    if (!range) state.summary = state.lastRecent || state.summary;
    drawCharts();
    loadSummary().catch(() => {});
  }

  function drawStatus(byStatus, queueLength) {
    const order = ["queued", "scheduled", "spawned", "executing", "completed", "failed", "timeout", "cancelled"];
    replace(statusStrip, order.filter((s) => s in byStatus).map((s) =>
      h("div", { class: `stat status-${s}` },
        h("dt", {}, h("a", { href: `#/tasks?status=${s}` }, s)),
        h("dd", {}, fmt.count(byStatus[s])))),
    h("div", { class: "stat" }, h("dt", {}, "queue length"), h("dd", {}, fmt.count(queueLength))));
  }
  drawStatus(data.tasks_by_status, data.queue_length);
  drawCharts();
  drawScaling(data.autoscaler);
  performance.mark("mimir:overview-drawn");

  const onSecond = (event) => {
    const { second, recent } = event.detail;
    if (state.t.length && second.t <= state.t[state.t.length - 1]) return;
    state.t.push(second.t);
    for (const key of Object.keys(state.columns)) state.columns[key].push(second[key] ?? null);
    if (state.t.length > KEEP) {
      state.t.shift();
      for (const key of Object.keys(state.columns)) state.columns[key].shift();
    }
    state.lastRecent = recent;
    if (!state.zoom) state.summary = recent;
    drawCharts();
    const desired = state.columns.desired_workers;
    if (desired.length > 1 && desired[desired.length - 1] !== desired[desired.length - 2]) refreshScaling();
  };
  const refreshScaling = async () => {
    try {
      const fresh = await get(`/api/dashboard/overview${query({ since: Math.floor(Date.now() / 1000) + 1 })}`);
      drawScaling(fresh.autoscaler);
    } catch (_) { /* the stream badge shows connection trouble */ }
  };
  const onResync = async () => {
    try {
      const fresh = await get("/api/dashboard/overview");
      columnsOf(fresh.timeline);
      drawCharts();
    } catch (_) { /* the stream badge shows connection trouble */ }
  };
  live.addEventListener("second", onSecond);
  live.addEventListener("resync", onResync);
  const counts = setInterval(async () => {
    try {
      const summary = await get("/api/metrics");
      drawStatus(summary.tasks_by_status, summary.queue.length);
      await refreshScaling();
    } catch (_) { /* the stream badge shows connection trouble */ }
  }, 5000);
  return () => {
    live.removeEventListener("second", onSecond);
    live.removeEventListener("resync", onResync);
    clearInterval(counts);
  };
}
