// One task: what it is, every attempt (worker, start, end, outcome, error),
// its pipeline steps with their times, parameters, result, retry reasons and
// trace id; while it waits, why it has not started. Refreshes while the task
// is still going.

import { ApiError, get, post } from "../api.js";
import { badge, bar, h, replace, table } from "../dom.js";
import * as fmt from "../format.js";

const RUNNING = new Set(["scheduled", "spawned", "executing"]);
const ENDED = new Set(["completed", "failed", "timeout", "cancelled"]);
const WAITING = new Set(["queued", "scheduled"]);

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value === "" || value === null || value === undefined ? "–" : value)];
}

function json(value) {
  return h("pre", { class: "json", tabindex: "0" }, JSON.stringify(value, null, 2));
}

/** The "Why it is waiting" panel: one line per reason, its code and sentence. */
function why(reasons) {
  return h("section", { class: "panel", "data-why": "" },
    h("h2", {}, "Why it is waiting"),
    reasons.length === 0
      ? h("p", { class: "muted" }, "Nothing known keeps it waiting.")
      : h("ul", {}, reasons.map((r) => h("li", { "data-code": r.code },
          h("span", { class: "mono" }, r.code), ": ", r.message))));
}

export async function render(main, { id, current }) {
  let timer = null;
  let stopped = false;
  const live = () => !stopped && current();
  async function load() {
    clearTimeout(timer);
    let task;
    let attempts;
    let explanation;
    try {
      [task, { attempts }, explanation] = await Promise.all([
        get(`/api/worktasks/${encodeURIComponent(id)}`),
        get(`/api/worktasks/${encodeURIComponent(id)}/attempts`),
        // The page still shows the task when the reasons cannot be had.
        get(`/api/worktasks/${encodeURIComponent(id)}/explain`).catch(() => null),
      ]);
    } catch (error) {
      if (!live()) return;
      if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
        replace(main, h("div", { class: "panel error", role: "alert" },
          h("h1", {}, "No such task"), h("p", {}, error.message), h("a", { href: "#/tasks" }, "Back to the task list")));
        return;
      }
      throw error;
    }
    if (!live()) return;
    draw(task, attempts, explanation);
    if (!ENDED.has(task.status)) timer = setTimeout(() => load().catch(() => {}), 2000);
  }

  function draw(task, attempts, explanation) {
    const traceId = fmt.traceId(task.traceparent);
    const rows = attempts.map((a) => ({ ...a, ran: fmt.between(a.started_at, a.ended_at) }));
    if (RUNNING.has(task.status) && task.worker_id) {
      rows.push({ attempt: task.attempt, worker_id: task.worker_id, started_at: task.started_at, ended_at: null, outcome: task.status, error: "", ran: null });
    }
    const steps = (task.result && Array.isArray(task.result.steps)) ? task.result.steps : [];
    const longest = Math.max(1, ...steps.map((s) => s.duration_ms || 0));
    const cancel = (RUNNING.has(task.status) || task.status === "queued")
      ? h("button", { type: "button", class: "danger", onclick: async (event) => {
          event.target.disabled = true;
          try {
            await post(`/api/worktasks/${encodeURIComponent(task.worktask_id)}/cancel`);
          } catch (error) {
            alert(`Could not cancel: ${error.message}`);
          }
          await load().catch(() => {});
        } }, "Cancel task")
      : null;
    replace(main,
      h("div", { class: "page-head" },
        h("h1", {}, "Task ", h("span", { class: "mono" }, task.worktask_id)),
        badge(task.status), cancel),
      WAITING.has(task.status) && explanation ? why(explanation.reasons || []) : null,
      task.error_message ? h("div", { class: "panel error", role: "alert" }, h("h2", {}, "Error"), h("p", { class: "mono wrap" }, task.error_message)) : null,
      h("section", { class: "panel" },
        h("h2", {}, "Details"),
        h("dl", { class: "details" },
          field("Type", task.type),
          field("Priority", task.priority),
          field("Project", task.project_id),
          field("Pipeline", task.task_spec?.pipeline_id),
          field("Model", task.task_spec?.model_id ? h("a", { href: "#/models" }, task.task_spec.model_id) : ""),
          field("Submitted", fmt.when(task.submitted_at)),
          field("Started", fmt.when(task.started_at)),
          field("Ended", fmt.when(task.completed_at)),
          field("Ran for", fmt.seconds(fmt.between(task.started_at, task.completed_at))),
          field("Attempt", `${task.attempt}`),
          ...(task.kubernetes_job_name
            ? [field("Kubernetes Job", h("span", { class: "mono" }, `${task.kubernetes_job_name} (cluster ${task.cluster_name})`))]
            : []),
          field("Retries", `${task.retry_count} of ${task.max_retries}`),
          field("Last retry reason", task.retry_reason),
          field("Next try not before", task.not_before ? fmt.when(task.not_before) : ""),
          field("Trace id", traceId ? h("span", { class: "mono", "data-trace-id": traceId }, traceId) : ""))),
      h("section", { class: "panel" },
        h("h2", {}, "Attempts"),
        table([
          ["#", (a) => a.attempt, "num"],
          ["Worker", (a) => h("span", { class: "mono" }, a.worker_id)],
          ["Started", (a) => fmt.when(a.started_at)],
          ["Ended", (a) => (a.ended_at ? fmt.when(a.ended_at) : "running")],
          ["Ran", (a) => fmt.seconds(a.ran), "num"],
          ["Outcome", (a) => badge(a.outcome)],
          ["Error", (a) => h("span", { class: "wrap" }, a.error || "")],
        ], rows, { empty: "No attempt yet: the task has not been leased." })),
      h("section", { class: "panel" },
        h("h2", {}, task.task_spec?.model_id && !task.task_spec?.pipeline_id ? "Steps" : "Pipeline steps"),
        table([
          ["Step", (s) => s.name],
          ["Plugin", (s) => `${s.plugin}.${s.action}`, "mono"],
          // A training reports how far it is: trees, epochs or iterations.
          ["Status", (s) => (s.progress
            ? h("span", { "data-progress": "" }, badge(s.status), ` ${fmt.count(s.progress.done)} of ${fmt.count(s.progress.total)} ${s.progress.unit}`)
            : badge(s.status))],
          ["Time", (s) => bar((s.duration_ms || 0) / longest, fmt.seconds((s.duration_ms || 0) / 1000)), "wide"],
          ["Error", (s) => h("span", { class: "wrap" }, s.error || "")],
        ], steps, { empty: "No steps recorded for this task." })),
      h("div", { class: "grid two" },
        h("section", { class: "panel" }, h("h2", {}, "Parameters"), json(task.task_spec)),
        h("section", { class: "panel" }, h("h2", {}, "Result"), task.result ? json(task.result) : h("p", { class: "muted" }, "No result yet."))));
  }

  await load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
