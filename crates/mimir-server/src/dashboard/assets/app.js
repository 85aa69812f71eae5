// The dashboard shell: hash routes to pages, one live stream shared by all of
// them, and the navigation state. Each page module exports
// `render(main, context)` and returns a function that stops its timers.

import { follow } from "./api.js";
import { h, replace } from "./dom.js";

/** Every page hears each closed second here (`second` and `resync` events). */
export const live = new EventTarget();

const PAGES = {
  overview: () => import("./pages/overview.js"),
  tasks: () => import("./pages/tasks.js"),
  task: () => import("./pages/task.js"),
  workers: () => import("./pages/workers.js"),
  pipelines: () => import("./pages/pipelines.js"),
  schedules: () => import("./pages/schedules.js"),
  storage: () => import("./pages/storage.js"),
  models: () => import("./pages/models.js"),
  health: () => import("./pages/health.js"),
};

const main = document.getElementById("main");
const liveBadge = document.getElementById("live");
let stop = null;
let generation = 0;

/** `#/tasks?status=failed` as `{section: "tasks", id: "", params}`. */
function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const [section = "overview", id = ""] = path.split("/");
  let decoded = id;
  try {
    decoded = decodeURIComponent(id);
  } catch (_) { /* a malformed address: use it as typed */ }
  return { section: PAGES[section] ? section : "overview", id: decoded, params: new URLSearchParams(search) };
}

async function route() {
  const mine = ++generation;
  const { section, id, params } = parseHash();
  stop?.();
  stop = null;
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.section === (section === "task" ? "tasks" : section);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const page = await PAGES[section]();
    if (mine !== generation) return;
    replace(main);
    // A page that finishes rendering after the user moved on stops at once
    // and must not become the current page's stop function.
    const stopped = (await page.render(main, { id, params, live, current: () => mine === generation })) || null;
    if (mine !== generation) {
      stopped?.();
      return;
    }
    stop = stopped;
  } catch (error) {
    if (mine !== generation) return;
    replace(main, h("div", { class: "panel error", role: "alert" },
      h("h2", {}, "This page could not load"),
      h("p", {}, error.message || String(error))));
  }
}

/** Navigates to `hash` (e.g. `#/tasks?status=failed`). */
export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
follow(
  (event, data) => live.dispatchEvent(new CustomEvent(event, { detail: data })),
  (state) => {
    liveBadge.textContent = state;
    liveBadge.dataset.state = state;
  },
);
route();
