// The research page (/research) for researchers and admins: registered stage models with their
// out-of-fold metrics and which one is promoted, agreement between the annotators' stage labels,
// and the assessment model's item and rater fit (infit/outfit outside 0.7–1.3 flagged).
// Data: GET /api/models, /api/annotations/agreement (404: no labels), /api/assessment/fit (404).

import { $, el } from "./dom.js";
import { fmt } from "./charts.js";
import { lang, t } from "./i18n.js";
import { getJSON } from "./session.js";
import { startSignedInPage } from "./topbar.js";

const FIT_LOW = 0.7;
const FIT_HIGH = 1.3;
let loaded = null; // {models, agreement, fit}: each the {ok, status, data} of its request

const num = (v, digits = 2) => fmt(v, digits, lang() === "en" ? "en-GB" : "sv-SE");

/** A table with a header row; the first cell of each row is a row header. Cells: string or node. */
function table(head, rows, attrs = {}) {
  const cell = (tag, c, a = {}) => (c instanceof Node ? el(tag, a, c) : el(tag, a, String(c)));
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      attrs,
      el("thead", {}, el("tr", {}, ...head.map((x) => el("th", { scope: "col" }, x)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, cell("th", r[0], { scope: "row" }), ...r.slice(1).map((c) => (c instanceof HTMLTableCellElement ? c : cell("td", c)))))),
    ),
  );
}

function section(id, titleKey, ...body) {
  return el("section", { class: "card", id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, t(titleKey)), ...body);
}

/** An agreement figure {value, low, high, n_items, status} as "v [lo, hi] (n = …)". */
function figure(f) {
  if (!f || f.value == null) return el("span", { class: "suppressed" }, f && f.status === "undefined" ? t("undefined_value") : t("too_few"));
  const interval = f.low != null && f.high != null ? ` [${num(f.low)}, ${num(f.high)}]` : "";
  return el("span", {}, `${num(f.value)}${interval} (n = ${f.n_items})`);
}

/** A fit statistic cell, flagged when outside 0.7–1.3. */
function fitCell(v) {
  if (v == null) return el("td", {}, "–");
  const off = v < FIT_LOW || v > FIT_HIGH;
  const value = String(v);
  return off
    ? el("td", { class: "flag", title: t("fit_flag"), "data-value": value }, `⚠ ${num(v)}`, el("span", { class: "visually-hidden" }, ` (${t("fit_flag")})`))
    : el("td", { "data-value": value }, num(v));
}

function modelsSection(r) {
  if (!r.ok) return section("sec-models", "models_title", el("p", { class: "error" }, r.data.detail || `HTTP ${r.status}`));
  if (!r.data.length) return section("sec-models", "models_title", el("p", { class: "muted" }, t("no_models")));
  const rows = r.data.map((m) => {
    const x = m.metrics || {};
    const version = el("span", {}, m.version, m.promoted ? el("span", { class: "badge" }, t("promoted_badge")) : null);
    return [
      version,
      m.created_at ? m.created_at.slice(0, 16).replace("T", " ") : "–",
      num(x.qwk),
      num(x.mae),
      num(x.accuracy),
      num(x.ece, 3),
      x.n == null ? "–" : String(x.n),
    ];
  });
  return section(
    "sec-models",
    "models_title",
    el("p", { class: "hint" }, t("models_hint")),
    table([t("version"), t("created"), "QWK", t("mae"), t("accuracy"), "ECE", "n"], rows, { id: "models-table" }),
  );
}

function agreementSection(r) {
  if (r.status === 404) return section("sec-agreement", "agreement_title", el("p", { class: "muted", id: "no-labels" }, t("no_labels")));
  if (!r.ok) return section("sec-agreement", "agreement_title", el("p", { class: "error" }, r.data.detail || `HTTP ${r.status}`));
  const a = r.data;
  const pairs = a.pairs.map((p) => [`${p.annotator_a} – ${p.annotator_b}`, String(p.n_items), figure(p.quadratic_weighted_kappa), figure(p.exact_agreement)]);
  const versus = a.versus_consensus.map((v) => [
    v.annotator,
    String(v.n_items),
    figure(v.quadratic_weighted_kappa),
    figure(v.mean_absolute_difference),
    figure(v.mean_difference),
  ]);
  return section(
    "sec-agreement",
    "agreement_title",
    el("p", {}, t("agreement_counts", { labels: a.n_labels, items: a.n_items, annotators: a.n_annotators, multi: a.n_items_multiply_labelled })),
    el("p", { class: "headline" }, `${t("alpha")}: `, figure(a.krippendorff_alpha)),
    el("h3", {}, t("pairs_title")),
    pairs.length ? table([t("annotators"), "n", "QWK", t("exact")], pairs) : el("p", { class: "muted" }, t("too_few")),
    el("h3", {}, t("consensus_title")),
    versus.length ? table([t("annotator"), "n", "QWK", t("mad"), t("mean_diff")], versus) : el("p", { class: "muted" }, t("too_few")),
    ...a.notes.map((n) => el("p", { class: "hint" }, n)),
  );
}

function fitSections(r) {
  if (r.status === 404) return [section("sec-fit", "fit_title", el("p", { class: "muted" }, t("no_ratings")))];
  if (!r.ok) return [section("sec-fit", "fit_title", el("p", { class: "error" }, r.data.detail || `HTTP ${r.status}`))];
  const f = r.data;
  const items = f.items.map((i) => [
    `${i.case} / ${i.item}`,
    i.thresholds.map((v, k) => `${num(v)} ± ${num(i.se[k])}`).join("; "),
    fitCell(i.infit),
    fitCell(i.outfit),
    String(i.n),
  ]);
  const raters = f.raters.map((x) => [x.rater, `${num(x.severity)} ± ${num(x.se)}`, fitCell(x.infit), fitCell(x.outfit), String(x.n)]);
  const flagged = [...f.items, ...f.raters].filter((x) => [x.infit, x.outfit].some((v) => v != null && (v < FIT_LOW || v > FIT_HIGH))).length;
  const status = f.converged ? t("fit_converged", { n: f.iterations }) : t("fit_not_converged", { n: f.iterations });
  return [
    section(
      "sec-fit",
      "fit_title",
      el("p", { class: "hint" }, `${status} ${t("fit_hint")}`),
      el("p", {}, t("fit_flagged", { n: flagged })),
      ...f.warnings.map((w) => el("p", { class: "banner warn" }, w)),
      el("h3", {}, t("items_title")),
      table([t("item"), t("thresholds"), "Infit", "Outfit", "n"], items, { id: "items-table" }),
      el("h3", {}, t("raters_title")),
      table([t("rater"), t("severity"), "Infit", "Outfit", "n"], raters, { id: "raters-table" }),
    ),
  ];
}

/** Sheets recorded per unit, case and term, and each educator's calibration agreement. */
function recordedSection(r) {
  if (!r || !r.ok) return section("sec-recorded", "recorded_title", el("p", { class: "muted" }, r ? r.data.detail || `HTTP ${r.status}` : ""));
  const sheets = r.data.sheets.map((x) => [x.unit, x.case, x.term, String(x.n)]);
  const cal = r.data.calibration.map((x) => [x.rater, String(x.n_items), num(x.exact), num(x.mean_abs_diff)]);
  return section(
    "sec-recorded",
    "recorded_title",
    sheets.length ? table([t("unit"), t("assess_case"), t("term"), "n"], sheets, { id: "sheets-table" }) : el("p", { class: "muted" }, t("no_ratings")),
    el("h3", {}, t("calib_title")),
    cal.length
      ? table([t("rater"), "n", t("exact"), t("mad")], cal, { id: "calibration-agreement" })
      : el("p", { class: "muted", id: "calibration-agreement" }, t("too_few")),
  );
}

function render() {
  if (!loaded) return;
  const skipped = loaded.skipped && loaded.skipped.ok && loaded.skipped.data.total > 0
    ? [el("p", { class: "banner warn", id: "skipped-rows" }, t("skipped_rows", { n: loaded.skipped.data.total, ...loaded.skipped.data }))]
    : [];
  $("research").replaceChildren(...skipped, modelsSection(loaded.models), agreementSection(loaded.agreement), ...fitSections(loaded.fit), recordedSection(loaded.recorded));
}

async function main() {
  const s = await startSignedInPage(render);
  if (!s) return;
  if (!["researcher", "admin"].includes(s.user.role)) {
    $("research-error").hidden = false;
    $("research-error").textContent = t("research_forbidden");
    return;
  }
  $("research").replaceChildren(el("p", { class: "muted" }, t("loading")));
  const [models, agreement, fit, skipped] = await Promise.all([
    getJSON("/api/models"),
    getJSON("/api/annotations/agreement"),
    getJSON("/api/assessment/fit"),
    getJSON("/api/profiles/skipped"),
  ]);
  const recorded = await getJSON("/api/assessment/recorded");
  loaded = { models, agreement, fit, skipped, recorded };
  render();
}

main();
