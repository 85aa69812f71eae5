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

/** A duration given in seconds: 850 µs, 12.3 ms, 1.25 s, 3 m 05 s, 2 h 10 m. */
export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  if (s === 0) return "0 s";
  if (s < 1e-3) return `${nf2.format(s * 1e6)} µs`;
  if (s < 1) return `${nf2.format(s * 1e3)} ms`;
  if (s < 60) return `${nf2.format(s)} s`;
  if (s < 3600) {
    const whole = Math.round(s);
    return `${Math.floor(whole / 60)} m ${String(whole % 60).padStart(2, "0")} s`;
  }
  const minutes = Math.round(s / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} m`;
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
