// A unit's profile page (/units/{id}) for principals: progression against the age bands, the trend
// across terms, assessment by curriculum area, context against the references, expected vs
// observed (as a deviation, never a ranking), development areas, similar units and the
// triangulation note. Data: GET /api/units/{id}/profile[?term=]; every chart comes from charts.js
// with a text alternative; suppressed figures say "too few to show".

import { $, el } from "./dom.js";
import { fmt, intervalChart, referenceChart, stageDistributionChart, trendChart } from "./charts.js";
import { lang, measureUnit, setupLanguageSwitch, t } from "./i18n.js";
import { getJSON, loadSession, signOut } from "./session.js";
import { renderTopBar } from "./topbar.js";

const unitId = Number(location.pathname.split("/").filter(Boolean)[1]);
let data = null; // the UnitProfileOut last loaded

const locale = () => (lang() === "en" ? "en-GB" : "sv-SE");
const num = (v, digits = 2) => fmt(v, digits, locale());
/** The label of a {label_sv, label_en} (or {note_sv, note_en}, …) object in the page's language. */
const loc = (obj, field = "label") => obj[`${field}_${lang()}`] ?? obj[`${field}_sv`] ?? "";
/** "value [lo, hi]" or the suppression notice. */
const withInterval = (v, lo, hi, digits = 2) =>
  v == null ? { text: t("too_few"), class: "suppressed" } : `${num(v, digits)} [${num(lo, digits)}, ${num(hi, digits)}]`;
const tooFewCell = () => ({ text: t("too_few"), class: "suppressed" });

function section(id, titleKey, ...body) {
  return el("section", { class: "card", id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, t(titleKey)), ...body);
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
      .map((e) => `${loc(e)}: ${e.suppressed ? t("too_few") : withInterval(e.shrunk_residual, e.shrunk_lo, e.shrunk_hi)} (n = ${e.n})`)
      .join("; "),
    digits: 2,
    table: {
      head: [t("outcome"), "n", t("observed"), t("expected"), t("deviation")],
      rows: profile.expected.map((e) =>
        e.suppressed
          ? [`${loc(e)} (${measureUnit(e.measure_unit)})`, String(e.n), tooFewCell(), tooFewCell(), tooFewCell()]
          : [`${loc(e)} (${measureUnit(e.measure_unit)})`, String(e.n), num(e.observed), num(e.expected), withInterval(e.shrunk_residual, e.shrunk_lo, e.shrunk_hi)],
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
      d.shrunk_residual == null
        ? null
        : el("p", { class: "hint" }, `${t("deviation")}: ${withInterval(d.shrunk_residual, d.shrunk_lo, d.shrunk_hi)}`),
    ),
  );
  return section("sec-development", "sec_development", el("ol", { class: "development-list" }, ...items));
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
    box.replaceChildren(el("p", { class: "muted" }, t("no_photos_yet")));
    return;
  }
  const parts = [distributionSection(term), trendSection(data.terms)];
  const p = data.profile;
  if (p) {
    parts.push(
      abilitySection(p),
      expectedSection(p),
      contextSection(p),
      developmentSection(p),
      similarSection(p),
      triangulationSection(p),
    );
  } else {
    parts.push(section("sec-development", "sec_development", el("p", { class: "muted" }, t("no_profile_term"))));
  }
  box.replaceChildren(...parts);
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
  const r = await getJSON(`/api/units/${unitId}/profile${q}`);
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
  setupLanguageSwitch(() => {
    renderTopBar();
    render();
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    location.replace("/");
  });
  $("term").addEventListener("change", (e) => load(e.target.value));
  const s = await loadSession().catch(() => null);
  if (!s) {
    location.replace("/");
    return;
  }
  renderTopBar();
  if (!Number.isInteger(unitId) || unitId <= 0) {
    showError(t("unit_not_found"));
    return;
  }
  await load(null);
}

main();
