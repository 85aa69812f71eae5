// Numbers with their units, the same way everywhere on the page.

const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });

/** A count: 1,234,567. */
export function count(n) {
  return n === null || n === undefined ? "–" : nf.format(n);
}

/** A rate per second. */
export function rate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return `${n >= 100 ? nf.format(n) : nf2.format(n)}/s`;
}

/** `x` rounded to three significant digits. */
function threeSignificant(x) {
  if (x === 0 || !Number.isFinite(x)) return x;
  const scale = 10 ** (2 - Math.floor(Math.log10(Math.abs(x))));
  return Math.round(x * scale) / scale;
}

/** `x` (1 to 999 once rounded) with three significant digits, no trailing zeros. */
function threeSignificantText(x) {
  const rounded = threeSignificant(x);
  const decimals = rounded >= 100 ? 0 : rounded >= 10 ? 1 : 2;
  const text = rounded.toFixed(decimals);
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

/**
 * A duration given in seconds: 850 µs, 51 ms, 1.26 s, 1 m 15 s, 2 h 10 m.
 * The same rules as the CLI's (`mimir_core::duration_text`); the browser test
 * compares the two.
 */
export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  if (s < 0) return `-${seconds(-s)}`;
  if (s === 0) return "0 s";
  const rounded = threeSignificant(s);
  if (rounded < 1e-3) return `${threeSignificantText(s * 1e6)} µs`;
  if (rounded < 1) return `${threeSignificantText(s * 1e3)} ms`;
  if (rounded < 60) return `${threeSignificantText(s)} s`;
  const whole = Math.round(s);
  if (whole < 3600) return whole % 60 ? `${Math.floor(whole / 60)} m ${whole % 60} s` : `${whole / 60} m`;
  if (!Number.isFinite(s)) return "∞";
  const minutes = Math.round(s / 60);
  return minutes % 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} m` : `${minutes / 60} h`;
}

/** A share: 12.5%. */
export function percent(x) {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : `${nf1.format(x * 100)}%`;
}

/** A clock time from Unix seconds: 14:03:21. */
export function clock(t) {
  return new Date(t * 1000).toLocaleTimeString(undefined, { hour12: false });
}

/** A date and time from an RFC 3339 string. */
export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString(undefined, { hour12: false })}`;
}

/** Seconds between two RFC 3339 times, or null. */
export function between(start, end) {
  if (!start || !end) return null;
  return (new Date(end) - new Date(start)) / 1000;
}

/** The trace id of a W3C traceparent, or "". */
export function traceId(traceparent) {
  const parts = (traceparent || "").split("-");
  return parts.length === 4 ? parts[1] : "";
}
