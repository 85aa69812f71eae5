// Time-series charts drawn as SVG: axes with units, live updates, drag across
// to zoom, keyboard to pan and zoom, and a readout of the values under the
// pointer. The page owns the time window; a chart only reports what the user
// asked for through `onZoom(from, to)` and `onReset()`.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";

const HEIGHT = 170;
const PAD = { left: 64, right: 12, top: 10, bottom: 24 };

/** Formats a value of `unit` (`count`, `rate` or `seconds`). */
export function formatter(unit) {
  if (unit === "rate") return fmt.rate;
  if (unit === "seconds") return fmt.seconds;
  return fmt.count;
}

/** Round tick values from 0 up to at least `max`. */
function niceTicks(max, unit) {
  if (!(max > 0)) return [0, 1];
  const raw = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(unit === "count" ? Math.round(v) : v);
  return [...new Set(ticks)];
}

/**
 * Decades from below the least positive value to above the greatest, for a
 * logarithmic axis: `[lo, hi, ticks]`. One long wait then takes one decade of
 * the height instead of pressing every other value onto the axis.
 */
function logTicks(least, greatest) {
  if (!(greatest > 0)) return [1e-3, 1, [1e-3, 1e-2, 1e-1, 1]];
  const lowExp = Math.floor(Math.log10(least > 0 ? least : greatest));
  let highExp = Math.ceil(Math.log10(greatest));
  if (highExp <= lowExp) highExp = lowExp + 1;
  const every = Math.ceil((highExp - lowExp) / 5);
  const ticks = [];
  for (let e = lowExp; e <= highExp; e += every) ticks.push(10 ** e);
  return [10 ** lowExp, 10 ** highExp, ticks];
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

function timeTicks(from, to, width) {
  const span = Math.max(1, to - from);
  const wanted = Math.max(2, Math.floor(width / 90));
  const step = TIME_STEPS.find((s) => span / s <= wanted) || 3600;
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return ticks;
}

/**
 * The live window: the last `span` seconds up to the newest point, or, while
 * less history than that exists, what there is (at least a minute), so a new
 * orchestrator's first seconds are not a sliver at the right edge.
 */
export function liveWindow(t, span, now) {
  const end = t.length ? t[t.length - 1] : now;
  const first = t.length ? t[0] : end;
  return [Math.max(end - span + 1, Math.min(first, end - 59)), end];
}

/** A line chart of one or more series over time. */
export class LineChart {
  /**
   * `series`: `[{key, label}]`, drawn in order with the colours `--series-1…`.
   * `unit`: how values are written on the axis and in the readout.
   * `scale`: `linear` (from 0) or `log` (decades; zero sits on the axis).
   */
  constructor({ title, unit = "count", scale = "linear", series, onZoom, onReset }) {
    this.title = title;
    this.unit = unit;
    this.scale = scale;
    this.marks = [];
    this.series = series;
    this.onZoom = onZoom;
    this.onReset = onReset;
    this.format = formatter(unit);
    this.t = [];
    this.columns = {};
    this.from = 0;
    this.to = 1;
    this.width = 600;
    this.now = h("span", { class: "now" });
    this.readout = h("span", { class: "readout", "aria-hidden": "true" });
    this.svg = h("svg", {
      class: "chart",
      role: "img",
      tabindex: "0",
      "aria-label": `${title}. Drag across to zoom; arrow keys pan, plus and minus zoom, Escape resets.`,
    });
    this.el = h("figure", { class: "panel chart-panel" },
      h("figcaption", {}, h("h3", {}, title), this.now),
      this.svg,
      h("div", { class: "legend" },
        series.map((s, i) => h("span", { class: `key series-${i + 1}` }, s.label)),
        this.readout));
    this.listen();
    new ResizeObserver(() => {
      const width = Math.floor(this.svg.getBoundingClientRect().width);
      if (width > 0 && width !== this.width) {
        this.width = width;
        this.draw();
      }
    }).observe(this.svg);
  }

  /** New data and window (Unix seconds); redraws. */
  setData(t, columns, from, to) {
    this.t = t;
    this.columns = columns;
    this.from = from;
    this.to = Math.max(to, from + 1);
    this.draw();
  }

  /**
   * Moments to mark on the time axis, `[{t, label}]`: a tick at each with its
   * label as the tooltip (e.g. why the autoscaler changed its mind).
   */
  setMarks(marks) {
    this.marks = marks;
    this.draw();
  }

  /**
   * The figures beside the title: `[[label, text, value?]]`; the value as a
   * number goes on the element for whoever reads the page by program.
   */
  setNow(figures) {
    replace(this.now, figures.map(([label, text, value]) =>
      h("span", { class: "figure" }, h("small", {}, label), " ", h("b", { "data-value": value ?? "" }, text))));
  }

  x(t) {
    return PAD.left + ((t - this.from) / (this.to - this.from)) * (this.width - PAD.left - PAD.right);
  }

  timeAt(px) {
    const share = (px - PAD.left) / (this.width - PAD.left - PAD.right);
    return this.from + Math.max(0, Math.min(1, share)) * (this.to - this.from);
  }

  /** Indices of the points inside the window. */
  visible() {
    let start = 0;
    while (start < this.t.length && this.t[start] < this.from) start++;
    let end = start;
    while (end < this.t.length && this.t[end] <= this.to) end++;
    return [start, end];
  }

  draw() {
    const w = this.width;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const [start, end] = this.visible();
    let max = 0;
    let leastPositive = Infinity;
    for (const s of this.series) {
      const column = this.columns[s.key] || [];
      for (let i = start; i < end; i++) {
        if (column[i] > max) max = column[i];
        if (column[i] > 0 && column[i] < leastPositive) leastPositive = column[i];
      }
    }
    let ticks;
    let y;
    const bottom = PAD.top + plotH;
    if (this.scale === "log") {
      const [lo, hi, decades] = logTicks(leastPositive, max);
      ticks = decades;
      const span = Math.log10(hi) - Math.log10(lo);
      y = (v) => (v > 0 ? bottom - (Math.max(0, Math.log10(v) - Math.log10(lo)) / span) * plotH : bottom);
    } else {
      ticks = niceTicks(max, this.unit);
      const top = ticks[ticks.length - 1] || 1;
      y = (v) => bottom - (v / top) * plotH;
    }
    const parts = [];
    for (const v of ticks) {
      parts.push(h("line", { class: "grid", x1: PAD.left, x2: w - PAD.right, y1: y(v), y2: y(v) }));
      parts.push(h("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, this.format(v)));
    }
    for (const t of timeTicks(this.from, this.to, w)) {
      // A label at either edge is anchored inside the chart, not cut in half.
      const x = this.x(t);
      const anchor = x > w - 30 ? "end" : x < PAD.left + 30 ? "start" : "middle";
      const at = anchor === "end" ? Math.min(x, w - 1) : x;
      parts.push(h("text", { class: "tick time", x: at, y: HEIGHT - 6, "text-anchor": anchor }, fmt.clock(t)));
    }
    parts.push(h("line", { class: "axis", x1: PAD.left, x2: w - PAD.right, y1: bottom, y2: bottom }));
    for (const mark of this.marks) {
      if (mark.t < this.from || mark.t > this.to) continue;
      const x = this.x(mark.t);
      parts.push(h("g", { class: "mark" },
        h("title", {}, mark.label),
        h("line", { x1: x, x2: x, y1: PAD.top, y2: bottom }),
        h("circle", { cx: x, cy: PAD.top + 3, r: 3 })));
    }
    // One point per pixel column at most: the column's largest value, so
    // peaks survive on a narrow chart.
    const columnsPerPixel = (end - start) / Math.max(1, w - PAD.left - PAD.right);
    this.series.forEach((s, i) => {
      const column = this.columns[s.key] || [];
      let d = "";
      let pen = false;
      let lastPx = -1;
      let pending = null;
      const flush = () => {
        if (!pending) return;
        // A lone point gets a zero-length segment, drawn as a dot by the round cap.
        d += pen
          ? `L${pending[0].toFixed(1)},${pending[1].toFixed(1)}`
          : `M${pending[0].toFixed(1)},${pending[1].toFixed(1)}l0,0`;
        pen = true;
        pending = null;
      };
      for (let k = start; k < end; k++) {
        const v = column[k];
        if (v === null || v === undefined) {
          flush();
          pen = false;
          continue;
        }
        const px = this.x(this.t[k]);
        // A gap of more than two seconds breaks the line: no data there.
        if (k > start && this.t[k] - this.t[k - 1] > 2) {
          flush();
          pen = false;
        }
        if (columnsPerPixel > 1 && pending && Math.round(px) === lastPx) {
          if (y(v) < pending[1]) pending[1] = y(v);
          continue;
        }
        flush();
        pending = [px, y(v)];
        lastPx = Math.round(px);
      }
      flush();
      parts.push(h("path", { class: `line series-${i + 1}`, d }));
    });
    this.guide = h("line", { class: "guide", x1: -10, x2: -10, y1: PAD.top, y2: PAD.top + plotH });
    this.selection = h("rect", { class: "selection", x: 0, y: PAD.top, width: 0, height: plotH });
    parts.push(this.guide, this.selection);
    this.svg.setAttribute("viewBox", `0 0 ${w} ${HEIGHT}`);
    this.svg.setAttribute("height", HEIGHT);
    replace(this.svg, parts);
    this.svg.dataset.points = String(end - start);
    this.svg.dataset.scale = this.scale;
  }

  /** The readout of the point nearest to time `t`. */
  showAt(t) {
    if (!this.t.length) return;
    let best = 0;
    for (let i = 0; i < this.t.length; i++) if (Math.abs(this.t[i] - t) < Math.abs(this.t[best] - t)) best = i;
    const at = this.t[best];
    this.guide.setAttribute("x1", this.x(at));
    this.guide.setAttribute("x2", this.x(at));
    const values = this.series.map((s) => `${s.label} ${this.format((this.columns[s.key] || [])[best])}`);
    this.readout.textContent = `${fmt.clock(at)} · ${values.join(" · ")}`;
  }

  listen() {
    let dragFrom = null;
    const localX = (event) => {
      const box = this.svg.getBoundingClientRect();
      return ((event.clientX - box.left) / box.width) * this.width;
    };
    this.svg.addEventListener("pointerdown", (event) => {
      dragFrom = localX(event);
      this.svg.setPointerCapture(event.pointerId);
    });
    this.svg.addEventListener("pointermove", (event) => {
      const x = localX(event);
      this.showAt(this.timeAt(x));
      if (dragFrom !== null) {
        this.selection.setAttribute("x", Math.min(dragFrom, x));
        this.selection.setAttribute("width", Math.abs(x - dragFrom));
      }
    });
    this.svg.addEventListener("pointerup", (event) => {
      if (dragFrom === null) return;
      const x = localX(event);
      const [a, b] = [this.timeAt(Math.min(dragFrom, x)), this.timeAt(Math.max(dragFrom, x))];
      dragFrom = null;
      this.selection.setAttribute("width", 0);
      if (b - a >= 2) this.onZoom?.(Math.floor(a), Math.ceil(b));
    });
    this.svg.addEventListener("pointercancel", () => {
      dragFrom = null;
      this.selection.setAttribute("width", 0);
    });
    this.svg.addEventListener("pointerleave", () => {
      this.readout.textContent = "";
      this.guide?.setAttribute("x1", -10);
      this.guide?.setAttribute("x2", -10);
    });
    this.svg.addEventListener("dblclick", () => this.onReset?.());
    this.svg.addEventListener("keydown", (event) => {
      const span = this.to - this.from;
      const moves = {
        ArrowLeft: [-span / 4, -span / 4],
        ArrowRight: [span / 4, span / 4],
        "+": [span / 4, -span / 4],
        "=": [span / 4, -span / 4],
        "-": [-span / 2, span / 2],
      };
      if (event.key === "Escape" || event.key === "0") {
        this.onReset?.();
      } else if (moves[event.key]) {
        const [df, dt] = moves[event.key];
        this.onZoom?.(Math.floor(this.from + df), Math.ceil(this.to + dt));
      } else {
        return;
      }
      event.preventDefault();
    });
  }
}
