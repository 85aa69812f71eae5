// Reading the orchestrator's own metrics (Prometheus text, filtered by family)
// for the operator panels: samples, histograms by label, and quantiles the way
// PromQL's histogram_quantile computes them.

/** Samples of the text: `[{name, labels, value}]`. */
export function parse(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

function key(labels, by) {
  return JSON.stringify(by.map((k) => labels[k] ?? ""));
}

/** Sums a counter's samples by the labels `by`: `Map(key -> {labels, value})`. */
export function sumBy(samples, name, by) {
  const out = new Map();
  for (const s of samples) {
    if (s.name !== name) continue;
    const k = key(s.labels, by);
    const entry = out.get(k) || { labels: Object.fromEntries(by.map((b) => [b, s.labels[b] ?? ""])), value: 0 };
    entry.value += s.value;
    out.set(k, entry);
  }
  return out;
}

/**
 * A histogram's series grouped by the labels `by`:
 * `[{labels, count, sum, mean, p50, p99}]`, buckets summed across other labels.
 */
export function histograms(samples, name, by) {
  const groups = new Map();
  const group = (labels) => {
    const k = key(labels, by);
    if (!groups.has(k)) {
      groups.set(k, { labels: Object.fromEntries(by.map((b) => [b, labels[b] ?? ""])), buckets: new Map(), count: 0, sum: 0 });
    }
    return groups.get(k);
  };
  for (const s of samples) {
    if (s.name === `${name}_bucket`) {
      const g = group(s.labels);
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      g.buckets.set(le, (g.buckets.get(le) || 0) + s.value);
    } else if (s.name === `${name}_count`) {
      group(s.labels).count += s.value;
    } else if (s.name === `${name}_sum`) {
      group(s.labels).sum += s.value;
    }
  }
  return [...groups.values()].map((g) => {
    const buckets = [...g.buckets.entries()].sort((a, b) => a[0] - b[0]);
    return {
      labels: g.labels,
      count: g.count,
      sum: g.sum,
      mean: g.count ? g.sum / g.count : null,
      p50: quantile(0.5, buckets),
      p99: quantile(0.99, buckets),
      p50Bound: bucketBound(0.5, buckets),
      p99Bound: bucketBound(0.99, buckets),
    };
  });
}

/**
 * The upper bound of the bucket the `q`-quantile lies in: exact, unlike the
 * interpolated value, which guesses within the bucket.
 */
export function bucketBound(q, buckets) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!total) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  for (const [le, cumulative] of buckets) if (cumulative >= rank) return le;
  return Infinity;
}

/** `histogram_quantile`: linear within the bucket the rank falls in. */
export function quantile(q, buckets) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, cumulative] of buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return prevLe;
      const inBucket = cumulative - prevCount;
      return inBucket ? prevLe + (le - prevLe) * ((rank - prevCount) / inBucket) : le;
    }
    prevLe = le;
    prevCount = cumulative;
  }
  return prevLe;
}
