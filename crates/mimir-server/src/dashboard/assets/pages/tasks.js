// Tasks: the list, filtered by status, type, project, priority and submission
// time, newest first, a page at a time. The filters live in the address, so a
// filtered view can be bookmarked and shared.

import { get, query } from "../api.js";
import { go } from "../app.js";
import { badge, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";

const STATUSES = ["queued", "scheduled", "spawned", "executing", "completed", "failed", "timeout", "cancelled"];
const TYPES = ["pipeline_execution", "ml_training", "ml_inference"];
const FILTERS = ["status", "type", "project_id", "min_priority", "max_priority", "since", "until"];
const PAGE = 50;

/** `datetime-local` value (local time) to RFC 3339, and back. */
const toRfc3339 = (local) => (local ? new Date(local).toISOString() : "");
function toLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function select(name, label, options, value) {
  return h("label", {}, label,
    h("select", { name }, h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
}

export async function render(main, { params }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || ""]));
  const cursors = [""];
  let page = 0;

  const form = h("form", { class: "filters panel", "aria-label": "Filter tasks" },
    select("status", "Status", STATUSES, filters.status),
    select("type", "Type", TYPES, filters.type),
    h("label", {}, "Project", h("input", { name: "project_id", value: filters.project_id, placeholder: "any", autocomplete: "off" })),
    h("label", {}, "Priority from", h("input", { name: "min_priority", type: "number", min: 1, max: 10, value: filters.min_priority })),
    h("label", {}, "to", h("input", { name: "max_priority", type: "number", min: 1, max: 10, value: filters.max_priority })),
    h("label", {}, "Submitted after", h("input", { name: "since", type: "datetime-local", value: toLocal(filters.since) })),
    h("label", {}, "before", h("input", { name: "until", type: "datetime-local", value: toLocal(filters.until) })),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", onclick: () => go("#/tasks") }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const f of FILTERS) {
      const v = String(data.get(f) || "").trim();
      next[f] = f === "since" || f === "until" ? toRfc3339(v) : v;
    }
    go(`#/tasks${query(next)}`);
  });

  const results = h("section", { class: "panel", "aria-live": "polite", "aria-label": "Tasks" });
  const heading = h("h1", {}, "Tasks");
  replace(main, h("div", { class: "page-head" }, heading), form, results);

  async function load() {
    const started = performance.now();
    const answer = await get(`/api/worktasks${query({ ...filters, limit: PAGE, cursor: cursors[page] })}`);
    const took = performance.now() - started;
    if (answer.next_cursor) cursors[page + 1] = answer.next_cursor;
    const rows = answer.worktasks;
    // One page load at a time: both buttons go quiet until it is done.
    const turn = (step) => (event) => {
      for (const b of event.target.parentElement.querySelectorAll("button")) b.disabled = true;
      page += step;
      load().catch((error) => replace(results, h("p", { class: "error", role: "alert" }, error.message)));
    };
    const older = h("button", { type: "button", disabled: !answer.next_cursor, onclick: turn(1) }, "Older →");
    const newer = h("button", { type: "button", disabled: page === 0, onclick: turn(-1) }, "← Newer");
    replace(results,
      h("div", { class: "toolbar" },
        newer, older,
        h("span", { class: "muted", "data-rows": rows.length },
          `page ${page + 1} · ${rows.length} task${rows.length === 1 ? "" : "s"} · ${fmt.seconds(took / 1000)}`)),
      table([
        ["Task", (t) => h("a", { href: `#/task/${t.worktask_id}`, class: "mono" }, t.worktask_id.slice(0, 8) + "…")],
        ["Status", (t) => badge(t.status)],
        ["Type", (t) => t.type],
        ["Priority", (t) => t.priority, "num"],
        ["Project", (t) => t.project_id],
        ["Submitted", (t) => fmt.when(t.submitted_at)],
        ["Ran", (t) => fmt.seconds(fmt.between(t.started_at, t.completed_at)), "num"],
        ["Retries", (t) => `${t.retry_count}/${t.max_retries}`, "num"],
        ["Error", (t) => h("span", { class: "clip", title: t.error_message }, t.error_message)],
      ], rows, { empty: "No task matches these filters." }));
  }
  await load();
}
