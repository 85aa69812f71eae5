// Schedules: every schedule with its cron, when it fires next and what became
// of its last slot, with pause, resume and run-now; and this orchestrator's
// own fire figures (`mimir_schedule_fires_total`, `mimir_schedule_lag_seconds`
// read from the metric families `/metrics` serves): fires by outcome and the
// lag from a slot being due to its task being submitted, over the last few
// minutes, taken between readings the page keeps.

import { get, getText, post, query } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";
import { parse, quantile, sumBy } from "../prometheus.js";

const POLL_MS = 5000;
/** How far back the fire figures reach, in seconds. */
const WINDOW_S = 300;
/** The shortest window the figures are taken over, in seconds. */
const MIN_WINDOW_S = 60;
const PAGE = 100;
const OUTCOMES = ["fired", "caught_up", "skipped_overlap", "missed"];
const FAMILIES = ["mimir_schedule_fires", "mimir_schedule_lag_seconds"];
const FILTERS = ["project_id", "pipeline_id"];

/** "in 12 s", "3 m 5 s ago", "now": whole seconds from now to an RFC 3339 time. */
function relative(iso, now) {
  if (!iso) return "";
  const s = Math.round((new Date(iso).getTime() - now) / 1000);
  if (s === 0) return "now";
  return s > 0 ? `in ${fmt.seconds(s)}` : `${fmt.seconds(-s)} ago`;
}

/** A time with its distance from now, kept current by the page's clock. */
function moment(iso) {
  if (!iso) return "–";
  return h("span", { class: "moment" },
    h("time", { datetime: iso }, fmt.when(iso)), " ",
    h("small", { class: "muted", "data-relative": iso }, relative(iso, Date.now())));
}

/** One reading of the fire counters and the lag buckets. */
function reading(text) {
  const samples = parse(text);
  const fires = new Map();
  for (const { labels, value } of sumBy(samples, "mimir_schedule_fires_total", ["schedule", "outcome"]).values()) {
    fires.set(`${labels.schedule}\u0000${labels.outcome}`, { ...labels, value });
  }
  const buckets = new Map();
  let count = 0;
  for (const s of samples) {
    if (s.name === "mimir_schedule_lag_seconds_bucket") {
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(le, (buckets.get(le) || 0) + s.value);
    } else if (s.name === "mimir_schedule_lag_seconds_count") {
      count += s.value;
    }
  }
  return { at: Date.now() / 1000, fires, buckets, count };
}

/**
 * `now` less `before` (the increase between two readings, as PromQL's
 * `increase` takes it); `now` whole when there is no `before` or a counter
 * went down (the orchestrator restarted).
 */
function between(now, before) {
  const reset = before && (now.count < before.count
    || [...before.fires].some(([k, f]) => (now.fires.get(k)?.value ?? 0) < f.value));
  const base = before && !reset ? before : null;
  const fires = [...now.fires.values()].map((f) => ({
    ...f,
    since: f.value,
    value: f.value - (base?.fires.get(`${f.schedule}\u0000${f.outcome}`)?.value ?? 0),
  }));
  const buckets = [...now.buckets].sort((a, b) => a[0] - b[0])
    .map(([le, n]) => [le, n - (base?.buckets.get(le) ?? 0)]);
  return { fires, buckets, count: now.count - (base?.count ?? 0), from: base ? base.at : null };
}

export async function render(main, { params }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || ""]));
  const cursors = [""];
  let page = 0;
  const readings = [];
  let stopped = false;

  const notice = h("p", { class: "notice", role: "status", "aria-live": "polite", "data-notice": "" });
  const stats = h("dl", { class: "stats", "aria-label": "Schedules now" });
  const list = h("section", { class: "panel", "data-panel": "schedules" });
  const outcomes = h("section", { class: "panel", "data-panel": "outcomes" });
  const bySchedule = h("section", { class: "panel", "data-panel": "by-schedule" });
  const filtered = FILTERS.filter((f) => filters[f]);
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Schedules"),
      filtered.length
        ? h("p", { class: "muted" }, `Only ${filtered.map((f) => `${f} ${filters[f]}`).join(", ")} · `,
            h("a", { href: "#/schedules" }, "show all"))
        : null),
    notice, stats, list, h("div", { class: "grid two" }, outcomes, bySchedule));

  /** Says what an action did, or why it failed; links go in as elements. */
  const say = (error, ...parts) => {
    notice.className = error ? "notice error" : "notice";
    notice.setAttribute("role", error ? "alert" : "status");
    replace(notice, ...parts);
  };

  async function act(button, schedule, action) {
    for (const b of button.parentElement.querySelectorAll("button")) b.disabled = true;
    try {
      const answer = await post(`/api/schedules/${encodeURIComponent(schedule.id)}/${action}`);
      if (action === "run-now") {
        // 201 with the tasks: a list, or an object holding one.
        const tasks = Array.isArray(answer) ? answer : (answer?.tasks || answer?.worktasks || [answer]);
        const ids = tasks.map((t) => t?.worktask_id || t?.id).filter(Boolean);
        say(false, `Started ${schedule.name}: `,
          ids.length
            ? ids.map((id, i) => [i ? ", " : "", h("a", { class: "mono", href: `#/task/${encodeURIComponent(id)}` }, id)])
            : "submitted.");
      } else {
        say(false, `${action === "pause" ? "Paused" : "Resumed"} ${schedule.name}.`);
      }
    } catch (error) {
      say(true, `Could not ${action.replace("-", " ")} ${schedule.name}: ${error.message}`);
    }
    await load().catch(() => {});
  }

  function actions(s) {
    const toggle = s.enabled
      ? h("button", { type: "button", "data-action": "pause", onclick: (e) => act(e.currentTarget, s, "pause") }, "Pause")
      : h("button", { type: "button", "data-action": "resume", onclick: (e) => act(e.currentTarget, s, "resume") }, "Resume");
    return h("span", { class: "actions" }, toggle,
      h("button", { type: "button", "data-action": "run-now", title: "Fire every pipeline of this schedule now, once", onclick: (e) => act(e.currentTarget, s, "run-now") }, "Run now"));
  }

  async function load() {
    const [answer, pipelines, text] = await Promise.all([
      get(`/api/schedules${query({ ...filters, limit: PAGE, cursor: cursors[page] })}`),
      // Names are a nicety: ids show when the list cannot be had.
      get("/api/pipelines").then((p) => p.pipelines || []).catch(() => []),
      getText(`/api/dashboard/metrics${query({ family: FAMILIES.join(",") })}`).catch(() => ""),
    ]);
    if (stopped) return;
    if (answer.next_cursor) cursors[page + 1] = answer.next_cursor;
    const names = new Map(pipelines.map((p) => [p.id, p.name]));
    const schedules = answer.schedules || [];

    // Readings as old as the window (and one older, to span all of it).
    const now = reading(text);
    readings.push(now);
    while (readings.length > 2 && readings[1].at <= now.at - WINDOW_S) readings.shift();
    // Until the readings span a minute, since start: a window of a few
    // seconds would mostly show nothing.
    const oldest = readings[0];
    const recent = between(now, now.at - oldest.at >= MIN_WINDOW_S ? oldest : null);
    const span = recent.from === null ? "since the orchestrator started" : `over the last ${fmt.seconds(Math.round(now.at - recent.from))}`;
    const short = recent.from === null ? "since start" : `last ${fmt.seconds(Math.round(now.at - recent.from))}`;
    const p50 = recent.count > 0 ? quantile(0.5, recent.buckets) : null;
    const p99 = recent.count > 0 ? quantile(0.99, recent.buckets) : null;
    const inWindow = (outcome) => recent.fires.filter((f) => f.outcome === outcome).reduce((a, f) => a + f.value, 0);
    const late = inWindow("missed") + inWindow("skipped_overlap");

    const stat = (label, value, cls) => [h("div", { class: `stat ${cls || ""}` }, h("dt", {}, label), h("dd", {}, value))];
    const secs = (v) => h("span", { "data-seconds": v ?? "" }, fmt.seconds(v));
    const enabled = schedules.filter((s) => s.enabled).length;
    replace(stats,
      stat("Schedules", fmt.count(schedules.length)),
      stat("Enabled", fmt.count(enabled), "schedules-enabled"),
      stat("Paused", fmt.count(schedules.length - enabled), "schedules-paused"),
      stat(`Fired, ${short}`, fmt.count(inWindow("fired") + inWindow("caught_up")), "schedule-fires"),
      stat(`Missed or skipped, ${short}`, fmt.count(late), late > 0 ? "schedule-missed error" : "schedule-missed"),
      stat(`Lag p50, ${short}`, secs(p50), "schedule-lag-p50"),
      stat(`Lag p99, ${short}`, secs(p99), p99 > 5 ? "schedule-lag-p99 error" : "schedule-lag-p99"));

    const turn = (step) => (event) => {
      for (const b of event.currentTarget.parentElement.querySelectorAll("button")) b.disabled = true;
      page += step;
      load().catch((error) => say(true, error.message));
    };
    const pipelineLinks = (s) => {
      const ids = s.pipeline_ids?.length ? s.pipeline_ids : [s.pipeline_id];
      return ids.map((id, i) => [i ? ", " : "",
        h("a", { href: "#/pipelines", title: id, "data-pipeline-id": id }, names.get(id) || id)]);
    };
    const lastTasks = (s) => {
      const ids = s.last_task_ids?.length ? s.last_task_ids : (s.last_task_id ? [s.last_task_id] : []);
      if (!ids.length) return "–";
      return ids.map((id, i) => [i ? " " : "",
        h("a", { class: "mono", href: `#/task/${encodeURIComponent(id)}`, title: id, "data-task-id": id }, `${String(id).slice(0, 8)}…`)]);
    };
    const next = (s) => {
      if (!s.enabled) return h("span", { class: "muted" }, "paused");
      if (!s.next_fire_at) return h("span", { class: "muted" }, "never again");
      const due = s.next_due_at || s.next_fire_at;
      return h("span", { title: due !== s.next_fire_at ? `slot ${fmt.when(s.next_fire_at)}, fires at ${fmt.when(due)} (jitter)` : null },
        moment(due),
        s.queued_fire_at ? h("div", { class: "muted" }, `queued: slot ${fmt.when(s.queued_fire_at)}`) : null);
    };
    replace(list,
      h("div", { class: "toolbar" },
        h("button", { type: "button", disabled: page === 0, onclick: turn(-1) }, "← Previous"),
        h("button", { type: "button", disabled: !answer.next_cursor, onclick: turn(1) }, "Next →"),
        h("span", { class: "muted", "data-rows": schedules.length },
          `page ${page + 1} · ${schedules.length} schedule${schedules.length === 1 ? "" : "s"}`)),
      table([
        ["Name", (s) => h("span", { "data-schedule-id": s.id, title: `${s.id} (project ${s.project_id})` }, s.name)],
        ["Pipelines", pipelineLinks],
        ["Cron", (s) => h("span", { class: "mono" }, s.cron, h("span", { class: "muted" }, ` ${s.timezone}`))],
        ["State", (s) => badge(s.enabled ? "enabled" : "paused")],
        ["Next fire", next],
        ["Last fire", (s) => moment(s.last_fire_at)],
        ["Last outcome", (s) => (s.last_outcome ? badge(s.last_outcome) : "–")],
        ["Last task", lastTasks],
        ["Catch-up / overlap", (s) => h("span", { class: "mono" }, `${s.catchup} / ${s.overlap}`,
          s.jitter_ms ? h("span", { class: "muted" }, ` ±${fmt.seconds(s.jitter_ms / 1000)}`) : null)],
        ["", actions],
      ], schedules, {
        empty: filtered.length
          ? "No schedule matches these filters."
          : "No schedule yet: create one with `mimir-aip schedule create …` (POST /api/schedules), giving a pipeline, a cron such as `*/5 * * * *` and its time zone.",
      }));

    const totals = OUTCOMES.map((outcome) => {
      const rows = recent.fires.filter((f) => f.outcome === outcome);
      return { outcome, value: rows.reduce((a, f) => a + f.value, 0), since: rows.reduce((a, f) => a + f.since, 0) };
    });
    const most = Math.max(1, ...totals.map((t) => t.value));
    replace(outcomes,
      h("h2", {}, "Fires by outcome"),
      table([
        ["Outcome", (t) => badge(t.outcome)],
        [`Slots ${span}`, (t) => bar(t.value / most, fmt.count(t.value)), "wide"],
        ["Since start", (t) => fmt.count(t.since), "num"],
      ], totals.some((t) => t.since > 0) ? totals : [], { empty: "No schedule has fired since the orchestrator started." }),
      h("p", { class: "muted" },
        `Fire lag (slot due → task submitted) ${span}: p50 `, secs(p50), ", p99 ", secs(p99),
        `, ${fmt.count(recent.count)} fires. Percentiles interpolated within the lag buckets, as Prometheus's histogram_quantile does.`));

    const rows = new Map();
    for (const f of recent.fires) {
      const row = rows.get(f.schedule) || { schedule: f.schedule, fired: 0, caught_up: 0, skipped_overlap: 0, missed: 0 };
      row[f.outcome] = (row[f.outcome] || 0) + f.value;
      rows.set(f.schedule, row);
    }
    const scheduleRows = [...rows.values()]
      .filter((r) => OUTCOMES.some((o) => r[o] > 0))
      .sort((a, b) => (b.missed + b.skipped_overlap) - (a.missed + a.skipped_overlap) || a.schedule.localeCompare(b.schedule));
    const warn = (n) => h("span", { class: n > 0 ? "error" : "" }, fmt.count(n));
    replace(bySchedule,
      h("h2", {}, `By schedule, ${span}`),
      table([
        ["Schedule", (r) => r.schedule],
        ["Fired", (r) => fmt.count(r.fired), "num"],
        ["Caught up", (r) => fmt.count(r.caught_up), "num"],
        ["Skipped (overlap)", (r) => warn(r.skipped_overlap), "num"],
        ["Missed", (r) => warn(r.missed), "num"],
      ], scheduleRows, { empty: "No slot decided in this window." }));
  }

  // Distances from now stay current between reloads.
  const clock = setInterval(() => {
    const now = Date.now();
    for (const el of main.querySelectorAll("[data-relative]")) el.textContent = relative(el.dataset.relative, now);
  }, 1000);
  const timer = setInterval(() => load().catch(() => {}), POLL_MS);
  const stop = () => {
    stopped = true;
    clearInterval(clock);
    clearInterval(timer);
  };
  try {
    await load();
  } catch (error) {
    stop();
    throw error;
  }
  return stop;
}

