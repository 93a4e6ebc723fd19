// A unit's profile page (/units/{id}) for principals. It leads with a short summary (development
// areas, the strongest area, how sure the figures are, what changed since last term); the detailed
// panels follow, collapsible, in the order a principal reads them: development areas, measures,
// expected vs observed, assessment, trend, progression against the age bands, context, similar
// units, triangulation. The panels: progression against the age bands, the trend across terms, assessment by curriculum area, context against the references, expected vs
// observed (as a deviation, never a ranking), development areas, similar units and the
// triangulation note. Data: GET /api/units/{id}/profile[?term=]; every chart comes from charts.js
// with a text alternative; suppressed figures say "too few to show".

import { $, el } from "./dom.js";
import { fmt, intervalChart, referenceChart, stageDistributionChart, trendChart } from "./charts.js";
import { lang, measureUnit, t } from "./i18n.js";
import { csrfToken, getJSON, session } from "./session.js";
import { startSignedInPage } from "./topbar.js";

const unitId = Number(location.pathname.split("/").filter(Boolean)[1]);
let data = null; // the UnitProfileOut last loaded
let measures = null; // {ok, status, data} of GET /api/units/{id}/measures
let areas = []; // MeasureAreaOut[]: areas a measure may address, with suggestions
let editing = null; // id of the measure being edited, or null for a new one
let draft = null; // the form's values, kept across re-renders (term and language changes)
let flash = ""; // the last write's outcome, shown in the measures panel

const locale = () => (lang() === "en" ? "en-GB" : "sv-SE");
const num = (v, digits = 2) => fmt(v, digits, locale());
/** The label of a {label_sv, label_en} (or {note_sv, note_en}, …) object in the page's language. */
const loc = (obj, field = "label") => obj[`${field}_${lang()}`] ?? obj[`${field}_sv`] ?? "";
/** "value [lo, hi]" or the suppression notice. */
const withInterval = (v, lo, hi, digits = 2) =>
  v == null ? { text: t("too_few"), class: "suppressed" } : `${num(v, digits)} [${num(lo, digits)}, ${num(hi, digits)}]`;
const tooFewCell = () => ({ text: t("too_few"), class: "suppressed" });

// Panels a principal opens (kept across re-renders: term and language changes). The page leads
// with the summary; of the detailed panels only development areas and measures start open.
const openPanels = new Set(["sec-development", "sec-measures"]);

/** A collapsible panel (<details>) with its heading in the <summary>. */
function section(id, titleKey, ...body) {
  const panel = el(
    "details",
    { class: "card panel", id },
    el("summary", {}, el("h2", { id: `${id}-h` }, t(titleKey))),
    ...body,
  );
  panel.open = openPanels.has(id);
  panel.addEventListener("toggle", () => (panel.open ? openPanels.add(id) : openPanels.delete(id)));
  return panel;
}

/** A list of names as "a, b och c" / "a, b and c". */
function listText(names) {
  if (names.length < 2) return names.join("");
  return `${names.slice(0, -1).join(", ")} ${t("and")} ${names[names.length - 1]}`;
}

/** Change between two interval figures {value, lo, hi} (intervals combined as independent). */
function change(now, before) {
  if (!now || !before) return null;
  const half = Math.hypot((now.hi - now.lo) / 2, (before.hi - before.lo) / 2);
  const value = now.value - before.value;
  return { value, lo: value - half, hi: value + half, clear: value - half > 0 || value + half < 0 };
}

const signed = (v) => (v > 0 ? "+" : v < 0 ? "−" : "") + num(Math.abs(v));
const changeText = (c) => `${signed(c.value)} [${num(c.lo)}, ${num(c.hi)}]`;

/**
 * The answer first: this term's development areas (or that none stands out), the strongest area,
 * how sure the figures are (n, suppression, model validation) and what changed since last term.
 */
function summarySection(term, terms) {
  const p = data.profile;
  const items = [];
  const item = (key, cls, ...text) => items.push(el("li", { class: cls, "data-summary": key }, el("strong", {}, `${t(`sum_${key}`)}: `), ...text));
  // development areas
  if (!p) item("areas", "", t("no_profile_term"));
  else if (p.development_areas.length) item("areas", "warn", t("sum_areas_list", { areas: listText(p.development_areas.map((d) => loc(d))) }));
  else item("areas", "", t("no_development"));
  // the strongest area: most credibly above its expected value (deviation over interval
  // half-width, so areas in stages and in logits compare on one scale)
  if (p) {
    const shown = p.expected.filter((e) => !e.suppressed && e.shrunk_residual != null && e.shrunk_lo != null && e.shrunk_hi > e.shrunk_lo);
    // above expectation as shown (a deviation that rounds to 0,00 is not above)
    const above = shown.filter((e) => e.shrunk_residual >= 0.005);
    const score = (e) => e.shrunk_residual / ((e.shrunk_hi - e.shrunk_lo) / 2);
    const best = above.sort((a, b) => score(b) - score(a))[0];
    if (!shown.length) item("strongest", "", t("sum_strongest_none"));
    else if (!best) item("strongest", "", t("sum_strongest_none_above"));
    else {
      const vars = { area: loc(best), dev: withInterval(best.shrunk_residual, best.shrunk_lo, best.shrunk_hi) };
      item("strongest", "", t(best.shrunk_lo > 0 ? "sum_strongest_clear" : "sum_strongest_within", vars));
    }
  }
  // how sure: n, what is withheld, what the stage model was validated on
  const nSheets = p ? p.ability.reduce((a, b) => a + b.n_sheets, 0) : 0;
  const withheld =
    (term ? term.by_age_band.filter((b) => b.suppressed).length + (term.suppressed ? 1 : 0) : 0) +
    (p ? p.ability.filter((a) => a.suppressed).length + p.expected.filter((e) => e.suppressed).length : 0);
  const validation = data.model_validation || { status: "synthetic_only" };
  item(
    "certainty",
    validation.status === "validated" ? "" : "warn",
    t("sum_n", { photos: term ? term.n_photos : 0, sheets: nSheets }),
    " ",
    withheld ? t("sum_withheld", { n: withheld, min: data.min_group_size }) : t("sum_none_withheld"),
    " ",
    validation.status === "validated" ? t("sum_validated", { text: validation.text }) : t("sum_synthetic"),
  );
  // since last term: the age-adjusted index and every assessed area whose change is clear
  const at = terms.findIndex((x) => x.term === data.term);
  const before = at > 0 ? terms[at - 1] : null;
  if (!before) item("changed", "", t("sum_no_earlier"));
  else {
    const parts = [];
    const c = change(term && term.index, before.index);
    parts.push(c ? t(c.clear ? "sum_index_changed" : "sum_index_same", { change: changeText(c), term: before.term }) : t("sum_index_too_few", { term: before.term }));
    if (p) {
      const moved = p.ability
        .map((a) => {
          const prev = p.ability_previous.filter((x) => x.area === a.area && x.term === before.term && !x.suppressed && x.ability != null)[0];
          if (a.suppressed || a.ability == null || !prev) return null;
          const ch = change({ value: a.ability, lo: a.ability_lo, hi: a.ability_hi }, { value: prev.ability, lo: prev.ability_lo, hi: prev.ability_hi });
          return ch && ch.clear ? `${loc(a)} ${changeText(ch)}` : null;
        })
        .filter(Boolean);
      parts.push(moved.length ? t("sum_areas_moved", { areas: moved.join("; ") }) : t("sum_areas_steady"));
    }
    item("changed", "", parts.join(" "));
  }
  return el(
    "section",
    { class: "card summary", id: "summary", "aria-labelledby": "summary-h" },
    el("h2", { id: "summary-h" }, t("sum_title", { term: data.term || "–" })),
    el("ul", { class: "summary-list" }, ...items),
    el("p", { class: "hint" }, t("sum_note")),
  );
}

/** Stage distribution of the chosen term against the stage its age bands lead one to expect. */
function distributionSection(term) {
  if (!term || term.suppressed || !term.stage_distribution) {
    return section("sec-distribution", "sec_distribution", el("p", { class: "suppressed" }, t("too_few")));
  }
  const shown = term.by_age_band;
  const nAll = shown.reduce((a, b) => a + b.n_photos, 0) || 1;
  const expected = shown.reduce((a, b) => a + b.expected_stage_for_age * b.n_photos, 0) / nAll;
  const observed = term.mean_stage ? term.mean_stage.value : null;
  const stageLabels = [0, 1, 2, 3, 4].map((k) => t(`stage_${k}`));
  const summary = t("dist_summary", {
    n: term.n_photos,
    observed: term.mean_stage ? withInterval(observed, term.mean_stage.lo, term.mean_stage.hi) : t("too_few"),
    expected: num(expected),
    shares: term.stage_distribution.map((p, k) => `${stageLabels[k]}: ${Math.round(p * 100)} %`).join(", "),
  });
  const chart = stageDistributionChart({
    shares: term.stage_distribution,
    stageLabels,
    observed,
    expected,
    labels: {
      title: t("dist_title", { term: term.term }),
      summary,
      stage: t("stage_axis"),
      observed: t("observed_mean"),
      expected: t("expected_mean"),
    },
    table: {
      caption: t("by_age_band"),
      head: [t("age_band"), t("n_photos"), t("mean_stage"), t("expected_for_age"), t("age_index")],
      rows: [
        ...shown.map((b) => [
          t("age_band_years", { band: b.age_band }),
          String(b.n_photos),
          b.suppressed || !b.mean_stage ? tooFewCell() : withInterval(b.mean_stage.value, b.mean_stage.lo, b.mean_stage.hi),
          num(b.expected_stage_for_age, 1),
          b.suppressed || !b.index ? tooFewCell() : withInterval(b.index.value, b.index.lo, b.index.hi),
        ]),
        [
          t("all_age_bands"),
          String(term.n_photos),
          term.mean_stage ? withInterval(term.mean_stage.value, term.mean_stage.lo, term.mean_stage.hi) : tooFewCell(),
          num(expected, 1),
          term.index ? withInterval(term.index.value, term.index.lo, term.index.hi) : tooFewCell(),
        ],
      ],
    },
  });
  return section("sec-distribution", "sec_distribution", el("p", { class: "hint" }, t("dist_hint")), chart);
}

/** The age-adjusted index per term (all terms), with interval whiskers. */
function trendSection(terms) {
  const points = terms.map((x) => ({
    term: x.term,
    suppressed: x.suppressed || !x.index,
    value: x.index ? x.index.value : null,
    lo: x.index ? x.index.lo : null,
    hi: x.index ? x.index.hi : null,
  }));
  const rows = terms.map((x) => [
    // Terms whose photos retention deleted are shown from the aggregates it kept.
    x.source === "retained" ? `${x.term} (${t("retained")})` : x.term,
    String(x.n_photos),
    x.mean_stage ? withInterval(x.mean_stage.value, x.mean_stage.lo, x.mean_stage.hi) : tooFewCell(),
    x.index ? withInterval(x.index.value, x.index.lo, x.index.hi) : tooFewCell(),
  ]);
  const summary = terms
    .map((x) => `${x.term}: ${x.index ? withInterval(x.index.value, x.index.lo, x.index.hi) : t("too_few")} (n = ${x.n_photos})`)
    .join("; ");
  const chart = trendChart({
    points,
    reference: 0,
    tooFew: t("too_few"),
    axisLabel: t("trend_axis"),
    title: t("sec_trend"),
    summary,
    table: { head: [t("term"), t("n_photos"), t("mean_stage"), t("age_index")], rows },
  });
  return section("sec-trend", "sec_trend", el("p", { class: "hint" }, t("trend_hint")), chart);
}

/**
 * The drawing-age gap per term: how much older or younger than their age band the unit's drawings
 * look (years, bias-corrected), with its interval and n; what scored it and whether that model was
 * ever validated on real drawings, said before any figure.
 */
function drawingAgeSection(gap) {
  if (!gap) return null;
  const status = el("p", { class: gap.validated_on_real_drawings ? "hint" : "hint warn", "data-validation": String(gap.validated_on_real_drawings) });
  status.textContent = gap.validated_on_real_drawings ? t("dage_validated", { text: gap.validation_label }) : t("dage_not_validated");
  if (gap.status === "unavailable") {
    return section("sec-drawing-age", "sec_drawing_age", status, el("p", { class: "muted" }, t("dage_unavailable", { reason: gap.reason || "" })));
  }
  const rows = gap.terms.map((x) => [
    x.term,
    String(x.n_photos),
    x.suppressed || !x.gap ? tooFewCell() : withInterval(x.gap.value, x.gap.lo, x.gap.hi),
  ]);
  return section(
    "sec-drawing-age",
    "sec_drawing_age",
    status,
    el("p", { class: "hint" }, t(gap.status === "cross_fitted" ? "dage_cross_fitted" : "dage_not_on_units")),
    simpleTable([t("term"), t("n_photos"), t("dage_gap", { level: Math.round(gap.level * 100) })], rows, { id: "drawing-age-table" }),
    el("p", { class: "hint" }, t("dage_note", { n: gap.min_n })),
  );
}

/** Assessed ability per curriculum area (logits) with 90 % intervals and a zero line. */
function abilitySection(profile) {
  if (!profile.ability.length) return section("sec-ability", "sec_ability", el("p", { class: "muted" }, t("no_ratings_unit")));
  const rows = profile.ability.map((a) => ({
    label: loc(a),
    value: a.ability,
    lo: a.ability_lo,
    hi: a.ability_hi,
    suppressed: a.suppressed,
  }));
  const summary = profile.ability
    .map((a) => `${loc(a)}: ${a.suppressed ? t("too_few") : withInterval(a.ability, a.ability_lo, a.ability_hi)} (n = ${a.n_sheets})`)
    .join("; ");
  const chart = intervalChart({
    rows,
    reference: 0,
    tooFew: t("too_few"),
    axisLabel: t("ability_axis"),
    title: t("ability_title", { term: profile.term }),
    summary,
    table: {
      head: [t("area"), t("n_sheets"), t("ability_value")],
      rows: profile.ability.map((a) => [loc(a), String(a.n_sheets), a.suppressed ? tooFewCell() : withInterval(a.ability, a.ability_lo, a.ability_hi)]),
    },
  });
  return section("sec-ability", "sec_ability", el("p", { class: "hint" }, t("ability_hint")), chart);
}

/** Context values against the municipality mean and the national references. */
function contextSection(profile) {
  if (!profile.context.length) return section("sec-context", "sec_context", el("p", { class: "muted" }, t("no_context")));
  const rows = profile.context.map((c) => ({
    label: loc(c),
    value: c.value,
    mean: c.municipality_mean,
    national: c.national ? c.national.value : null,
    bands: c.national ? c.national.benchmarks.map((b) => ({ lo: b.low, hi: b.high })) : [],
  }));
  const bench = (c) =>
    c.national && c.national.benchmarks.length
      ? c.national.benchmarks.map((b) => `${loc(b)}: ${num(b.low, 0)}–${num(b.high, 0)}`).join("; ")
      : "–";
  const chart = referenceChart({
    rows,
    labels: { unit: t("unit_value"), mean: t("municipality_mean"), national: t("national"), band: t("benchmark"), missing: t("missing") },
    title: t("sec_context"),
    summary: profile.context
      .map((c) => `${loc(c)}: ${num(c.value)} (${t("municipality_mean")} ${num(c.municipality_mean)}, ${t("national")} ${c.national ? num(c.national.value) : "–"})`)
      .join("; "),
    table: {
      head: [t("measure"), t("unit_value"), t("municipality_mean"), t("national"), t("benchmark")],
      rows: profile.context.map((c) => [
        `${loc(c)} (${measureUnit(c.measure_unit)})`,
        num(c.value),
        `${num(c.municipality_mean)} (n = ${c.municipality_n_units})`,
        c.national ? num(c.national.value) : "–",
        bench(c),
      ]),
    },
  });
  const sources = [...new Set(profile.context.filter((c) => c.national).map((c) => c.national.source))];
  return section(
    "sec-context",
    "sec_context",
    chart,
    sources.length ? el("p", { class: "hint" }, `${t("source")}: ${sources.join(" · ")}`) : null,
  );
}

/** The municipality's own quality indicators: the unit's value next to the municipality mean. */
function indicatorsSection(profile) {
  const list = profile.indicators || [];
  if (!list.length) return null;
  const side = (i) =>
    i.favourable == null ? "–" : { text: t(i.favourable ? "indicator_better" : "indicator_worse"), class: i.favourable ? "" : "suppressed" };
  const rows = list.map((i) => [
    `${loc(i)} (${measureUnit(i.measure_unit)})`,
    i.value == null ? { text: t("missing"), class: "suppressed" } : num(i.value),
    i.municipality_mean == null ? "–" : `${num(i.municipality_mean)} (n = ${i.municipality_n_units})`,
    i.difference == null ? "–" : signed(i.difference),
    side(i),
    i.used_by_model.length ? i.used_by_model.map((o) => areaLabel(o)).join(", ") : "–",
  ]);
  return section(
    "sec-indicators",
    "sec_indicators",
    el("p", { class: "hint" }, t("indicators_hint")),
    simpleTable([t("indicator"), t("unit_value"), t("municipality_mean"), t("difference"), t("indicator_side"), t("indicator_used")], rows, { id: "indicators-table" }),
    el("p", { class: "hint" }, list.map((i) => `${loc(i)}: ${i.reference || "–"}`).join(" · ")),
  );
}

/** Expected vs observed as a deviation with its (shrunk) interval; never a ranking. */
function expectedSection(profile) {
  if (!profile.expected.length) return section("sec-expected", "sec_expected", el("p", { class: "muted" }, t("no_expected")));
  const rows = profile.expected.map((e) => ({
    label: loc(e),
    value: e.shrunk_residual,
    lo: e.shrunk_lo,
    hi: e.shrunk_hi,
    suppressed: e.suppressed,
  }));
  const chart = intervalChart({
    rows,
    reference: 0,
    tooFew: t("too_few"),
    axisLabel: t("expected_axis"),
    title: t("expected_title", { term: profile.term }),
    summary: profile.expected
      .map((e) => `${loc(e)}: ${e.suppressed ? t("too_few") : deviationText(e)} (n = ${e.n})`)
      .join("; "),
    digits: 2,
    table: {
      head: [t("outcome"), "n", t("observed"), t("expected"), t("deviation")],
      rows: profile.expected.map((e) =>
        e.suppressed
          ? [`${loc(e)} (${measureUnit(e.measure_unit)})`, String(e.n), tooFewCell(), tooFewCell(), tooFewCell()]
          : [`${loc(e)} (${measureUnit(e.measure_unit)})`, String(e.n), num(e.observed), num(e.expected), deviationText(e)],
      ),
    },
  });
  const note = profile.expected.length ? loc(profile.expected[0], "note") : "";
  return section(
    "sec-expected",
    "sec_expected",
    el("p", { class: "association-note" }, t("association_note"), note ? ` ${note}` : ""),
    chart,
  );
}

/** Development areas with their explanations (or a sentence that none stands out). */
/**
 * A deviation from the expected value with its interval; when the spread between units is
 * estimated at (about) zero every deviation is shrunk to 0 with (next to) no width, which is no figure to
 * show as "0,00 [0,00, 0,00]": it says that no unit stands out from its expected value.
 */
function deviationText(e) {
  // (narrower than the 0,01 the page shows: it would read as an interval of no width)
  if (e.shrunk_residual != null && e.shrunk_lo != null && e.shrunk_hi - e.shrunk_lo < 0.005) return t("deviation_none");
  return withInterval(e.shrunk_residual, e.shrunk_lo, e.shrunk_hi);
}

function developmentSection(profile) {
  if (!profile.development_areas.length) {
    return section("sec-development", "sec_development", el("p", { class: "muted" }, t("no_development")));
  }
  const items = profile.development_areas.map((d) =>
    el(
      "li",
      { class: "development-area" },
      el("h3", {}, loc(d)),
      el("p", {}, loc(d, "explanation")),
      // the deviation from the expected value, where that is why the area is listed
      d.shrunk_residual == null || !d.reasons.includes("below_expected")
        ? null
        : el("p", { class: "hint" }, `${t("deviation")}: ${deviationText(d)}`),
    ),
  );
  return section("sec-development", "sec_development", el("ol", { class: "development-list" }, ...items));
}

// ---- measures (åtgärder) ---------------------------------------------------------------------

/** "2026-HT" -> a number that orders terms (VT before HT). */
const termKey = (x) => Number(x.slice(0, 4)) * 2 + (x.endsWith("HT") ? 1 : 0);
const areaLabel = (area) => {
  const a = areas.find((x) => x.area === area);
  return a ? loc(a) : area;
};
const changeCell = (v, lo, hi) =>
  v == null ? tooFewCell() : lo == null ? signed(v) : `${signed(v)} [${signed(lo)}, ${signed(hi)}]`;

/** One follow-up row as a sentence in the page's language and number format. */
function followUpText(f) {
  if (f.suppressed || f.observed_change == null) return t("follow_up_too_few", { term: f.term, n: f.n });
  return t("follow_up_text", {
    term: f.term,
    base: f.baseline_term,
    change: changeCell(f.observed_change, f.observed_lo, f.observed_hi),
    res: f.residual_change == null ? "–" : changeCell(f.residual_change, f.residual_lo, f.residual_hi),
    n: f.n,
  });
}

function mayWriteMeasures() {
  const s = session();
  if (!s) return false;
  return s.user.role === "admin" || (s.user.role === "principal" && s.user.units.some((u) => u.id === unitId));
}

/** A table of cells (strings or {text, class}) with a header row. */
function simpleTable(head, rows, attrs = {}) {
  const cell = (c) => (c && typeof c === "object" ? el("td", { class: c.class }, c.text) : el("td", {}, String(c)));
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      attrs,
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map(cell)))),
    ),
  );
}

/** Every measure running in the chosen term with how it stands: just started or followed up. */
function termSummary(list) {
  if (!data.term) return null;
  const running = list.filter((m) => termKey(m.start_term) <= termKey(data.term));
  if (!running.length) return null;
  const rows = running.map((m) => {
    const row = m.follow_up.find((f) => f.term === data.term);
    const status = m.start_term === data.term ? t("ts_starts") : row ? followUpText(row) : t("ts_no_row");
    return [m.title, areaLabel(m.area), m.start_term, status];
  });
  return el(
    "div",
    { id: "term-summary" },
    el("h3", {}, t("term_summary", { term: data.term })),
    el("p", { class: "hint" }, t("term_summary_hint")),
    simpleTable([t("sec_measures"), t("area"), t("measure_start"), t("follow_up")], rows),
  );
}

function measureItem(m) {
  const rows = m.follow_up.map((f) => [
    f.term,
    f.suppressed ? tooFewCell() : changeCell(f.observed_change, f.observed_lo, f.observed_hi),
    f.suppressed ? tooFewCell() : changeCell(f.residual_change, f.residual_lo, f.residual_hi),
    String(f.n),
  ]);
  const followUp = rows.length
    ? simpleTable([t("term"), t("follow_up_change", { base: m.follow_up[0].baseline_term }), t("follow_up_residual"), "n"], rows, { class: "follow-up" })
    : el("p", { class: "hint" }, t("follow_up_later", { term: m.start_term }));
  let actions = null;
  if (mayWriteMeasures()) {
    const edit = el("button", { type: "button", class: "secondary measure-edit" }, t("measure_edit"));
    edit.addEventListener("click", () => {
      editing = m.id;
      draft = { title: m.title, area: m.area, start_term: m.start_term, description: m.description || "", decided_by: m.decided_by };
      flash = "";
      render();
      $("measure-title").focus();
    });
    const del = el("button", { type: "button", class: "secondary measure-delete" }, t("measure_delete"));
    del.addEventListener("click", () => deleteMeasure(m));
    actions = el("div", { class: "measure-actions" }, edit, del);
  }
  return el(
    "li",
    { class: "measure", "data-measure-id": String(m.id) },
    el("h3", {}, m.title),
    el("p", { class: "hint" }, t("measure_meta", { area: areaLabel(m.area), term: m.start_term, by: m.decided_by })),
    m.description ? el("p", { class: "measure-description" }, m.description) : null,
    followUp,
    actions,
  );
}

function field(id, labelKey, control, hint = null) {
  return el("label", { for: id }, el("span", {}, t(labelKey)), control, hint);
}

/** The form for a new measure (or the one being edited), with the area's suggestions to pick. */
function measureForm() {
  const devAreas = data.profile ? data.profile.development_areas.map((d) => d.outcome) : [];
  if (!draft) draft = { title: "", area: devAreas[0] || "progression", start_term: data.term || "", description: "", decided_by: "" };
  const input = (id, key, attrs = {}) => {
    const node = el("input", { id, name: key, autocomplete: "off", ...attrs });
    node.value = draft[key];
    node.addEventListener("input", () => (draft[key] = node.value));
    return node;
  };
  const area = el("select", { id: "measure-area", name: "area" }, ...areas.map((a) => el("option", { value: a.area }, loc(a) + (devAreas.includes(a.area) ? ` (${t("is_development_area")})` : ""))));
  area.value = draft.area;
  const description = el("textarea", { id: "measure-description", name: "description", "aria-describedby": "measure-no-child", maxlength: "4000" });
  description.value = draft.description;
  description.addEventListener("input", () => (draft.description = description.value));
  const chosen = areas.find((a) => a.area === draft.area);
  const suggestions = el(
    "ul",
    { class: "suggestions", id: "measure-suggestions" },
    ...(chosen ? chosen.suggestions : []).map((sg) => {
      const use = el("button", { type: "button", class: "secondary use-suggestion" }, t("measure_use"));
      use.addEventListener("click", () => {
        draft.title = loc(sg, "title");
        draft.description = loc(sg, "text");
        render();
        $("measure-title").focus();
      });
      return el("li", { class: "suggestion" }, el("p", {}, el("strong", {}, loc(sg, "title")), ": ", loc(sg, "text")), use);
    }),
  );
  area.addEventListener("change", () => {
    draft.area = area.value;
    render();
    $("measure-area").focus();
  });
  const save = el("button", { type: "submit", id: "measure-save" }, t(editing ? "measure_update" : "measure_save"));
  const cancel = editing ? el("button", { type: "button", class: "secondary", id: "measure-cancel" }, t("measure_cancel")) : null;
  if (cancel) {
    cancel.addEventListener("click", () => {
      editing = null;
      draft = null;
      render();
    });
  }
  const form = el(
    "form",
    { class: "measure-form", id: "measure-form", novalidate: "" },
    el("h3", {}, editing ? `${t("measure_edit")}: ${draft.title}` : t("measure_new")),
    field("measure-area", "measure_area", area),
    el("p", { class: "hint" }, t("measure_suggestions")),
    suggestions,
    field("measure-title", "measure_title", input("measure-title", "title", { maxlength: "200", required: "" })),
    el(
      "div",
      { class: "row" },
      field("measure-start", "measure_start", input("measure-start", "start_term", { maxlength: "7", placeholder: "2026-HT", required: "" })),
      field("measure-decided-by", "measure_decided_by", input("measure-decided-by", "decided_by", { maxlength: "120", required: "" })),
    ),
    field("measure-description", "measure_description", description, el("span", { class: "hint", id: "measure-no-child" }, t("measure_no_child"))),
    el("p", { class: "error", id: "measure-error", role: "alert" }),
    el("div", { class: "measure-actions" }, save, cancel),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveMeasure();
  });
  return form;
}

function measuresSection() {
  const body = [el("p", { class: "hint" }, t("measures_hint")), el("p", { class: "ok", id: "measure-flash", role: "status" }, flash)];
  if (!measures) body.push(el("p", { class: "muted" }, t("loading")));
  else if (!measures.ok) body.push(el("p", { class: "error" }, t("profile_error", { detail: measures.data.detail || `HTTP ${measures.status}` })));
  else {
    const list = measures.data;
    body.push(termSummary(list));
    body.push(list.length ? el("ul", { class: "measure-list", id: "measure-list" }, ...list.map(measureItem)) : el("p", { class: "muted", id: "no-measures" }, t("no_measures")));
    if (mayWriteMeasures() && areas.length) body.push(measureForm());
  }
  return section("sec-measures", "sec_measures", ...body);
}

async function loadMeasures() {
  measures = await getJSON(`/api/units/${unitId}/measures`);
}

async function send(method, url, body) {
  const r = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: body ? JSON.stringify(body) : undefined,
  }).catch(() => null);
  const answer = r && r.status !== 204 ? await r.json().catch(() => ({})) : {};
  // FastAPI's schema errors are a list: "field: message" each
  const detail = Array.isArray(answer.detail)
    ? answer.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ")
    : answer.detail;
  return { ok: !!r && r.ok, status: r ? r.status : 0, detail: r ? detail || `HTTP ${r.status}` : t("network_error") };
}

async function saveMeasure() {
  const body = {
    title: draft.title.trim(),
    area: draft.area,
    start_term: draft.start_term.trim(),
    description: draft.description.trim() || null,
    decided_by: draft.decided_by.trim(),
  };
  const url = editing ? `/api/units/${unitId}/measures/${editing}` : `/api/units/${unitId}/measures`;
  $("measure-save").disabled = true;
  const r = await send(editing ? "PATCH" : "POST", url, body);
  if (!r.ok) {
    $("measure-save").disabled = false;
    $("measure-error").textContent = t("measure_refused", { detail: r.detail });
    return;
  }
  editing = null;
  draft = null;
  flash = t("measure_saved");
  await loadMeasures();
  render();
}

async function deleteMeasure(m) {
  if (!window.confirm(t("measure_delete_confirm", { title: m.title }))) return;
  const r = await send("DELETE", `/api/units/${unitId}/measures/${m.id}`);
  flash = r.ok ? t("measure_deleted") : t("measure_refused", { detail: r.detail });
  if (editing === m.id) {
    editing = null;
    draft = null;
  }
  await loadMeasures();
  render();
}

/** Units like this one in context (distance), with their progression index. */
function similarSection(profile) {
  if (!profile.similar_units.length) return section("sec-similar", "sec_similar", el("p", { class: "muted" }, t("no_similar")));
  const head = el("tr", {}, ...[t("unit"), t("distance"), t("n_photos"), t("age_index")].map((h) => el("th", { scope: "col" }, h)));
  const rows = profile.similar_units.map((u) => {
    const p = u.progression;
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, u.unit),
      el("td", {}, num(u.distance)),
      el("td", {}, String(p.n_photos)),
      p.suppressed || p.index == null
        ? el("td", { class: "suppressed" }, t("too_few"))
        : el("td", {}, `${num(p.index)} [${num(p.index_lo)}, ${num(p.index_hi)}]`),
    );
  });
  return section(
    "sec-similar",
    "sec_similar",
    el("p", { class: "hint" }, t("similar_hint")),
    el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))),
  );
}

function triangulationSection(profile) {
  const tri = profile.triangulation;
  const across = tri.across_units;
  const acrossText = across.suppressed
    ? t("too_few")
    : t("across_units", { r: withInterval(across.pearson_r, across.r_lo, across.r_hi), n: across.n_units });
  return section(
    "sec-triangulation",
    "sec_triangulation",
    el("p", { class: tri.diverges ? "banner warn" : "" }, loc(tri, "note")),
    el("p", { class: "hint" }, acrossText),
    el("p", { class: "hint" }, loc(profile, "note")),
  );
}

function render() {
  if (!data) return;
  $("unit-name").textContent = data.unit;
  $("unit-meta").textContent = t("unit_meta", { model: data.model_version || "–", n: data.min_group_size });
  const select = $("term");
  const terms = [...new Set([...data.terms.map((x) => x.term), ...(data.term ? [data.term] : [])])];
  select.replaceChildren(...terms.map((x) => el("option", { value: x }, x)));
  if (data.term) select.value = data.term;
  $("export-csv").href = `/api/profiles/export?format=csv&unit_id=${unitId}`;
  $("export-xlsx").href = `/api/profiles/export?format=xlsx&unit_id=${unitId}`;
  const term = data.terms.find((x) => x.term === data.term) || data.terms[data.terms.length - 1];
  const box = $("sections");
  if (!data.terms.length) {
    $("summary-box").replaceChildren();
    box.replaceChildren(el("p", { class: "muted" }, t("no_photos_yet")));
    return;
  }
  $("summary-box").replaceChildren(summarySection(term, data.terms));
  // the order a principal reads them: what to work on, what was decided, why, then the evidence
  const p = data.profile;
  const parts = [];
  if (p) {
    parts.push(developmentSection(p), measuresSection(), expectedSection(p), abilitySection(p), trendSection(data.terms), drawingAgeSection(data.drawing_age_gap), distributionSection(term), contextSection(p), indicatorsSection(p), similarSection(p), triangulationSection(p));
  } else {
    parts.push(section("sec-development", "sec_development", el("p", { class: "muted" }, t("no_profile_term"))), measuresSection(), trendSection(data.terms), drawingAgeSection(data.drawing_age_gap), distributionSection(term));
  }
  box.replaceChildren(...parts.filter(Boolean));
}

function showError(message) {
  $("unit-status").hidden = true;
  $("unit-page").hidden = true;
  $("unit-error").hidden = false;
  $("unit-error").textContent = message;
}

async function load(term) {
  $("unit-status").hidden = false;
  const q = term ? `?term=${encodeURIComponent(term)}` : "";
  const [r, m, a] = await Promise.all([
    getJSON(`/api/units/${unitId}/profile${q}`),
    getJSON(`/api/units/${unitId}/measures`),
    areas.length ? null : getJSON("/api/measures/areas"),
  ]);
  measures = m;
  if (a && a.ok) areas = a.data;
  $("unit-status").hidden = true;
  if (r.status === 401) {
    location.replace("/");
    return;
  }
  if (!r.ok) {
    data = null;
    showError(r.status === 404 || r.status === 403 ? t("unit_not_found") : t("profile_error", { detail: r.data.detail || `HTTP ${r.status}` }));
    return;
  }
  data = r.data;
  $("unit-error").hidden = true;
  $("unit-page").hidden = false;
  render();
}

async function main() {
  $("term").addEventListener("change", (e) => load(e.target.value));
  const s = await startSignedInPage(render);
  if (!s) return;
  if (!Number.isInteger(unitId) || unitId <= 0) {
    showError(t("unit_not_found"));
    return;
  }
  await load(null);
}

main();
