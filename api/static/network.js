// The municipality's network view (/network) for administrators and researchers: the areas several
// units share (where a network meeting on the area could help), then every unit, alphabetically,
// with its development areas and running measures in the term. No ranking of units.
// Data: GET /api/network[?term=].

import { $, el } from "./dom.js";
import { fmt } from "./charts.js";
import { lang, t } from "./i18n.js";
import { getJSON } from "./session.js";
import { startSignedInPage } from "./topbar.js";

let data = null; // the NetworkOut last loaded

const loc = (obj, field = "label") => obj[`${field}_${lang()}`] ?? obj[`${field}_sv`] ?? "";
const num = (v) => fmt(Math.abs(v), 2, lang() === "en" ? "en-GB" : "sv-SE");
const signed = (v) => (v > 0 ? "+" : v < 0 ? "−" : "") + num(v);
const change = (v, lo, hi) => (lo == null ? signed(v) : `${signed(v)} [${signed(lo)}, ${signed(hi)}]`);

/** A follow-up row as a sentence in the page's language and number format (as on the unit page). */
function followUpText(f) {
  if (f.suppressed || f.observed_change == null) return t("follow_up_too_few", { term: f.term, n: f.n });
  return t("follow_up_text", {
    term: f.term,
    base: f.baseline_term,
    change: change(f.observed_change, f.observed_lo, f.observed_hi),
    res: f.residual_change == null ? "–" : change(f.residual_change, f.residual_lo, f.residual_hi),
    n: f.n,
  });
}

function card(id, titleKey, ...body) {
  return el("section", { class: "card", id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, t(titleKey)), ...body);
}

/** One running measure: title, area and how it stands in the term (follow-up, never proof). */
function measureLine(m) {
  const status =
    m.status === "starts" ? t("ts_starts") : m.follow_up ? followUpText(m.follow_up) : t("ts_no_row");
  return el("li", { class: "network-measure" }, el("strong", {}, m.title), ` (${loc(m)}, ${m.start_term}): `, status);
}

function commonSection() {
  if (!data.common_areas.length) return card("sec-common", "common_title", el("p", { class: "muted" }, t("no_common")));
  const items = data.common_areas.map((a) =>
    el(
      "li",
      { class: "common-area", "data-area": a.area },
      el("strong", {}, loc(a)),
      `: ${t("common_units", { n: a.n_units })} (${a.units.join(", ")}) · `,
      t("common_detail", { dev: a.n_development, measures: a.n_measures }),
    ),
  );
  return card("sec-common", "common_title", el("p", { class: "hint" }, t("common_hint")), el("ul", {}, ...items));
}

function unitsSection() {
  const head = el("tr", {}, ...[t("unit"), t("col_development"), t("col_measures")].map((h) => el("th", { scope: "col" }, h)));
  const list = (items) => (items.length ? el("ul", {}, ...items) : t("none_dash"));
  const rows = data.units.map((u) =>
    el(
      "tr",
      { class: "network-unit", "data-unit-id": String(u.unit_id) },
      el("th", { scope: "row" }, el("a", { href: `/units/${u.unit_id}` }, u.unit)),
      el(
        "td",
        { class: "dev-areas" },
        u.has_profile ? list(u.development_areas.map((d) => el("li", {}, loc(d)))) : el("span", { class: "muted" }, t("no_profile_term")),
      ),
      el("td", { class: "measures" }, list(u.measures.map(measureLine))),
    ),
  );
  return card(
    "sec-units",
    "network_units",
    el("div", { class: "table-wrap" }, el("table", { id: "network-table" }, el("thead", {}, head), el("tbody", {}, ...rows))),
    el("p", { class: "hint" }, loc(data, "note")),
  );
}

function render() {
  if (!data) return;
  const select = $("term");
  select.replaceChildren(...data.terms.map((x) => el("option", { value: x }, x)));
  if (data.term) select.value = data.term;
  $("term-label").hidden = !data.terms.length;
  $("network").replaceChildren(el("p", { class: "hint", id: "network-hint" }, t("network_hint", { term: data.term || "–" })), commonSection(), unitsSection());
}

async function load(term) {
  $("network-status").hidden = false;
  const r = await getJSON(`/api/network${term ? `?term=${encodeURIComponent(term)}` : ""}`);
  $("network-status").hidden = true;
  if (r.status === 401) {
    location.replace("/");
    return;
  }
  if (!r.ok) {
    $("network-error").hidden = false;
    $("network-error").textContent = r.status === 403 ? t("network_forbidden") : t("profile_error", { detail: r.data.detail || `HTTP ${r.status}` });
    return;
  }
  $("network-error").hidden = true;
  data = r.data;
  render();
}

async function main() {
  $("term").addEventListener("change", (e) => load(e.target.value));
  const s = await startSignedInPage(render);
  if (!s) return;
  if (!["researcher", "admin"].includes(s.user.role)) {
    $("network-status").hidden = true;
    $("network-error").hidden = false;
    $("network-error").textContent = t("network_forbidden");
    return;
  }
  await load(null);
}

main();
