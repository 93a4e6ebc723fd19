// Inline SVG charts for the profile and research pages, built in the browser (no library, no CDN).
// Every chart is a <figure>: the SVG (role="img", aria-label, <title>, <desc>) followed by its text
// alternative, a small table with the numbers, n and interval. The module holds no strings of its
// own: callers pass every label already translated (see i18n.js).

import { el, svg as s } from "./dom.js";

const WIDTH = 640; // viewBox width; the SVG scales to its container (width: 100%)
const FONT = 14; // viewBox units

/** About five round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return ticks;
}

/** A linear scale from the domain [d0, d1] to the range [r0, r1]. */
function linear(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** The domain [lo, hi] of the finite numbers given, padded by 8 % (at least ±pad around one value). */
function domainOf(values, pad = 0.5) {
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (!finite.length) return [-pad, pad];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi - lo < 1e-9) {
    lo -= pad;
    hi += pad;
  }
  const margin = (hi - lo) * 0.08;
  return [lo - margin, hi + margin];
}

/** Format a number with `digits` decimals (the page's language decides the decimal mark). */
export function fmt(v, digits = 2, locale = "sv-SE") {
  if (v == null || !Number.isFinite(v)) return "–";
  if (Math.abs(v) < 0.5 * 10 ** -digits) v = 0; // no "−0,00"
  return v.toLocaleString(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * The <figure> around a chart: the SVG with its accessible name and description, then the text
 * alternative as a table. `table` = {caption, head: [..], rows: [[..], ..]} (cells are strings or
 * nodes; a cell {text, class} gets that class).
 */
function figure(svg, { title, summary, table }) {
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", summary ? `${title}. ${summary}` : title);
  svg.setAttribute("class", "chart-svg");
  svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
  svg.prepend(s("title", {}, title), s("desc", {}, summary || ""));
  const fig = el("figure", { class: "chart" }, svg);
  if (table) {
    const cell = (tag, c, attrs = {}) =>
      c && typeof c === "object" && !(c instanceof Node)
        ? el(tag, { ...attrs, class: c.class || "" }, c.text)
        : el(tag, attrs, c);
    const head = el("tr", {}, ...table.head.map((c) => cell("th", c, { scope: "col" })));
    const rows = table.rows.map((r) => el("tr", {}, cell("th", r[0], { scope: "row" }), ...r.slice(1).map((c) => cell("td", c))));
    const tbl = el("table", { class: "alt-table" }, el("thead", {}, head), el("tbody", {}, ...rows));
    if (table.caption) tbl.prepend(el("caption", {}, table.caption));
    fig.append(el("figcaption", {}, tbl));
  }
  return fig;
}

/** Horizontal axis ticks and grid lines between y0 and y1. */
function xAxis(g, x, ticks, y0, y1, digits) {
  for (const v of ticks) {
    g.append(
      s("line", { x1: x(v), x2: x(v), y1: y0, y2: y1, class: "grid" }),
      s("text", { x: x(v), y: y1 + FONT + 2, "text-anchor": "middle", class: "tick" }, fmt(v, digits)),
    );
  }
}

/**
 * Stage distribution: one bar per stage (share of photos, 0–1), with markers for the unit's
 * observed mean stage and the mean stage its age bands would lead one to expect.
 *
 * opts: {shares: [5 numbers], stageLabels: [5 strings], observed: number|null,
 *        expected: number|null, labels: {title, summary, share, stage, observed, expected},
 *        table}
 */
export function stageDistributionChart({ shares, stageLabels, observed, expected, labels, table }) {
  const height = 260;
  const left = 44;
  const right = WIDTH - 12;
  const top = 34;
  const bottom = height - 44;
  const n = shares.length;
  const band = (right - left) / n;
  const yMax = Math.max(0.5, Math.ceil(Math.max(...shares) * 10) / 10);
  const y = linear(0, yMax, bottom, top);
  const x = linear(-0.5, n - 0.5, left, right); // stage k sits at the centre of bar k
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-stage" });
  const g = s("g", { "font-size": FONT });
  for (const v of niceTicks(0, yMax, 4)) {
    g.append(
      s("line", { x1: left, x2: right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, `${Math.round(v * 100)} %`),
    );
  }
  shares.forEach((share, k) => {
    const bx = left + k * band + band * 0.15;
    g.append(
      s("rect", { x: bx, y: y(share), width: band * 0.7, height: bottom - y(share), class: "bar" }),
      s("text", { x: bx + band * 0.35, y: y(share) - 5, "text-anchor": "middle", class: "value" }, `${Math.round(share * 100)} %`),
      s("text", { x: bx + band * 0.35, y: bottom + FONT + 4, "text-anchor": "middle", class: "tick" }, stageLabels[k]),
    );
  });
  g.append(s("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis" }));
  g.append(s("text", { x: left, y: height - 6, class: "tick" }, labels.stage));
  // markers: expected (dashed, amber) and observed (solid, dark) mean stage on the stage axis
  // the lower marker is labelled on its left, the higher on its right, so close markers stay legible
  const marker = (value, cls, text, row, leftSide) => {
    if (value == null) return;
    const mx = x(value);
    const attrs = leftSide ? { x: mx - 4, "text-anchor": "end" } : { x: mx + 4 };
    g.append(
      s("line", { x1: mx, x2: mx, y1: top - 8 + row * 14, y2: bottom, class: `marker ${cls}` }),
      s("text", { ...attrs, y: top - 12 + row * 14 + 10, class: `marker-label ${cls}` }, text),
    );
  };
  const expectedLower = expected != null && observed != null && expected <= observed;
  marker(expected, "expected", labels.expected, 0, expectedLower);
  marker(observed, "observed", labels.observed, 1, !expectedLower && observed != null);
  svg.append(g);
  return figure(svg, { title: labels.title, summary: labels.summary, table });
}

/**
 * Dot + whisker per row on a horizontal axis, with a reference line (zero by default).
 *
 * opts: {rows: [{label, value, lo, hi, suppressed, hollow?}], reference: number|null,
 *        tooFew: string, axisLabel: string, title, summary, table, digits}
 */
export function intervalChart({ rows, reference = 0, tooFew, axisLabel, title, summary, table, digits = 1 }) {
  const rowH = 34;
  const labelW = 200;
  const left = labelW + 8;
  const right = WIDTH - 16;
  const top = 10;
  const height = top + rows.length * rowH + 44;
  const bottom = top + rows.length * rowH;
  const shown = rows.filter((r) => !r.suppressed && r.value != null);
  const [d0, d1] = domainOf(
    shown.flatMap((r) => [r.value, r.lo, r.hi]).concat(reference == null ? [] : [reference]),
  );
  const x = linear(d0, d1, left, right);
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-interval" });
  const g = s("g", { "font-size": FONT });
  xAxis(g, x, niceTicks(d0, d1, 5), top, bottom, digits);
  if (reference != null) {
    g.append(s("line", { x1: x(reference), x2: x(reference), y1: top, y2: bottom, class: "reference" }));
  }
  rows.forEach((r, i) => {
    const cy = top + i * rowH + rowH / 2;
    const label = r.label.length > 25 ? `${r.label.slice(0, 24)}…` : r.label;
    g.append(s("text", { x: labelW, y: cy + 5, "text-anchor": "end", class: "row-label" }, s("title", {}, r.label), label));
    if (r.suppressed || r.value == null) {
      g.append(s("text", { x: left + 6, y: cy + 5, class: "too-few" }, tooFew));
      return;
    }
    if (r.lo != null && r.hi != null) {
      g.append(
        s("line", { x1: x(r.lo), x2: x(r.hi), y1: cy, y2: cy, class: "whisker" }),
        s("line", { x1: x(r.lo), x2: x(r.lo), y1: cy - 7, y2: cy + 7, class: "whisker" }),
        s("line", { x1: x(r.hi), x2: x(r.hi), y1: cy - 7, y2: cy + 7, class: "whisker" }),
      );
    }
    g.append(s("circle", { cx: x(r.value), cy, r: 6, class: r.hollow ? "dot hollow" : "dot" }));
  });
  g.append(s("text", { x: (left + right) / 2, y: height - 6, "text-anchor": "middle", class: "tick" }, axisLabel));
  svg.append(g);
  return figure(svg, { title, summary, table });
}

/**
 * Trend across terms: one point per term with its interval whisker, joined by a line where
 * consecutive terms are shown; suppressed terms say so instead of a point.
 *
 * opts: {points: [{term, value, lo, hi, suppressed}], reference: number|null, tooFew, axisLabel,
 *        title, summary, table, digits}
 */
export function trendChart({ points, reference = 0, tooFew, axisLabel, title, summary, table, digits = 1 }) {
  const height = 250;
  const left = 52;
  const right = WIDTH - 20;
  const top = 16;
  const bottom = height - 40;
  const shown = points.filter((p) => !p.suppressed && p.value != null);
  const [d0, d1] = domainOf(
    shown.flatMap((p) => [p.value, p.lo, p.hi]).concat(reference == null ? [] : [reference]),
  );
  const y = linear(d0, d1, bottom, top);
  const n = points.length;
  const x = (i) => (n === 1 ? (left + right) / 2 : left + 30 + (i * (right - left - 60)) / (n - 1));
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-trend" });
  const g = s("g", { "font-size": FONT });
  for (const v of niceTicks(d0, d1, 4)) {
    g.append(
      s("line", { x1: left, x2: right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmt(v, digits)),
    );
  }
  if (reference != null) {
    g.append(s("line", { x1: left, x2: right, y1: y(reference), y2: y(reference), class: "reference" }));
  }
  let previous = null;
  points.forEach((p, i) => {
    const cx = x(i);
    g.append(s("text", { x: cx, y: bottom + FONT + 6, "text-anchor": "middle", class: "tick" }, p.term));
    if (p.suppressed || p.value == null) {
      g.append(s("text", { x: cx, y: (top + bottom) / 2, "text-anchor": "middle", class: "too-few" }, tooFew));
      previous = null;
      return;
    }
    if (previous) g.append(s("line", { x1: previous[0], y1: previous[1], x2: cx, y2: y(p.value), class: "trend-line" }));
    if (p.lo != null && p.hi != null) {
      g.append(
        s("line", { x1: cx, x2: cx, y1: y(p.lo), y2: y(p.hi), class: "whisker" }),
        s("line", { x1: cx - 7, x2: cx + 7, y1: y(p.lo), y2: y(p.lo), class: "whisker" }),
        s("line", { x1: cx - 7, x2: cx + 7, y1: y(p.hi), y2: y(p.hi), class: "whisker" }),
      );
    }
    g.append(s("circle", { cx, cy: y(p.value), r: 6, class: "dot" }));
    previous = [cx, y(p.value)];
  });
  g.append(s("text", { x: 4, y: 12, class: "tick" }, axisLabel));
  svg.append(g);
  return figure(svg, { title, summary, table });
}

/**
 * Context against the references: per row its own horizontal scale with the national benchmark
 * range shaded, the national value as a tick, the municipality mean as a diamond and the unit's
 * value as a dot.
 *
 * opts: {rows: [{label, value, mean, national, bands: [{lo, hi}]}], labels: {unit, mean, national,
 *        band, missing}, title, summary, table}
 */
export function referenceChart({ rows, labels, title, summary, table }) {
  const rowH = 44;
  const labelW = 210;
  const left = labelW + 10;
  const right = WIDTH - 16;
  const top = 30;
  const height = top + rows.length * rowH + 10;
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-reference" });
  const g = s("g", { "font-size": FONT });
  // legend
  const legend = [
    ["dot", labels.unit],
    ["mean", labels.mean],
    ["national", labels.national],
    ["band", labels.band],
  ];
  let lx = 12;
  for (const [kind, text] of legend) {
    if (kind === "dot") g.append(s("circle", { cx: lx + 6, cy: 12, r: 6, class: "dot" }));
    if (kind === "mean") g.append(s("path", { d: `M${lx + 6},5 l7,7 l-7,7 l-7,-7 z`, class: "mean-marker" }));
    if (kind === "national") g.append(s("line", { x1: lx + 6, x2: lx + 6, y1: 3, y2: 21, class: "national-marker" }));
    if (kind === "band") g.append(s("rect", { x: lx, y: 6, width: 14, height: 12, class: "band" }));
    g.append(s("text", { x: lx + 18, y: 17, class: "tick" }, text));
    lx += 34 + text.length * 8.2;
  }
  rows.forEach((r, i) => {
    const cy = top + i * rowH + rowH / 2;
    const label = r.label.length > 25 ? `${r.label.slice(0, 24)}…` : r.label;
    g.append(s("text", { x: labelW, y: cy + 5, "text-anchor": "end", class: "row-label" }, s("title", {}, r.label), label));
    const bands = r.bands || [];
    // anchored at zero (context measures are counts, shares, ratios): distances read as proportions
    const values = [r.value, r.mean, r.national, ...bands.flatMap((b) => [b.lo, b.hi])].filter(Number.isFinite);
    const d0 = Math.min(0, ...values);
    const d1 = Math.max(d0 + 1e-6, ...values) * 1.08;
    const x = linear(d0, d1, left, right);
    g.append(s("line", { x1: left, x2: right, y1: cy, y2: cy, class: "grid" }));
    for (const b of bands) {
      g.append(s("rect", { x: x(b.lo), y: cy - 9, width: Math.max(2, x(b.hi) - x(b.lo)), height: 18, class: "band" }));
    }
    if (r.national != null) g.append(s("line", { x1: x(r.national), x2: x(r.national), y1: cy - 13, y2: cy + 13, class: "national-marker" }));
    if (r.mean != null) g.append(s("path", { d: `M${x(r.mean)},${cy - 8} l8,8 l-8,8 l-8,-8 z`, class: "mean-marker" }));
    if (r.value != null) {
      g.append(s("circle", { cx: x(r.value), cy, r: 6, class: "dot" }));
    } else {
      g.append(s("text", { x: left + 4, y: cy - 12, class: "too-few" }, labels.missing));
    }
  });
  svg.append(g);
  return figure(svg, { title, summary, table });
}
