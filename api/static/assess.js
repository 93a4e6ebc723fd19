// The educators' assessment page: choose unit, group, age band and date once, pick a case, then rate
// one child's response after another. Each sheet is queued in IndexedDB (queue.js, database
// "spira-assess", owned by the signed-in account) and sent with an Idempotency-Key, so a lost
// connection loses nothing and a retry never records a sheet twice. No name, initials or free text
// about a child is ever asked for: the sheet holds levels per rubric item only.

import { remembered, today } from "./choice.js";
import { $, el } from "./dom.js";
import { applyTranslations, lang, setupLanguageSwitch, t } from "./i18n.js";
import { Sender, deleteItem, listItems, newJSONItem, ownedBy, putItem, sendJSON, useDatabase } from "./queue.js";
import { csrfToken, loadSession, session, signOut } from "./session.js";
import { renderTopBar } from "./topbar.js";

useDatabase("spira-assess");

const choices = remembered("spira.assess.choice", { unit_id: "unit", group_id: "group", age_band: "age-band", area: "area", case_id: "case" });
const CASES_KEY = "spira.assess.cases"; // the library, kept for offline use
const UNDO_MS = 2 * 60 * 1000; // the server takes a sheet back within 2 minutes of recording it
const BANDS = ["1-2", "2-3", "3-4", "4-5", "5-6"];
const AREAS_SV = { language: "språk", mathematics: "matematik", science: "naturvetenskap", creative: "skapande", social: "socialt" };

let cases = [];
let levels = {}; // rubric item -> chosen level for the child being rated
let child = 1;
let last = null; // {key, at}: the sheet that "undo" takes back
let serverCount = null;

const owner = () => (session() ? session().user.username : "");
const units = () => (session() ? session().user.units : []);
const currentCase = () => cases.find((c) => c.id === $("case").value);
const title = (c) => (lang() === "en" ? c.title_en : c.title_sv);
const areaName = (a) => (lang() === "en" ? a : AREAS_SV[a] || a);

function fillUnits() {
  const choice = choices.saved();
  $("unit").replaceChildren(...units().map((u) => new Option(u.name, String(u.id))));
  if (units().some((u) => String(u.id) === choice.unit_id)) $("unit").value = choice.unit_id;
  fillGroups(choice);
}

function fillGroups(choice = {}) {
  const unit = units().find((u) => String(u.id) === $("unit").value);
  const groups = unit ? unit.groups : [];
  $("group").replaceChildren(...groups.map((g) => new Option(`${g.name} (${t("age_band_years", { band: g.age_band })})`, String(g.id))));
  if (groups.some((g) => String(g.id) === choice.group_id)) $("group").value = choice.group_id;
  const group = groups.find((g) => String(g.id) === $("group").value);
  $("age-band").replaceChildren(...BANDS.map((b) => new Option(t("age_band_years", { band: b }), b)));
  $("age-band").value = choice.age_band && choice.group_id === $("group").value ? choice.age_band : group ? group.age_band : "3-4";
  fillCases(choice);
}

function fillCases(choice = {}) {
  const band = $("age-band").value;
  const areas = [...new Set(cases.map((c) => c.area))].sort();
  const area = choice.area ?? $("area").value;
  $("area").replaceChildren(new Option(t("assess_all_areas"), ""), ...areas.map((a) => new Option(areaName(a), a)));
  $("area").value = areas.includes(area) ? area : "";
  const shown = cases.filter((c) => c.age_bands.includes(band) && (!$("area").value || c.area === $("area").value));
  const before = choice.case_id ?? $("case").value;
  $("case").replaceChildren(new Option(t("assess_choose_case"), ""), ...shown.map((c) => new Option(`${title(c)} · ${areaName(c.area)}`, c.id)));
  $("case").value = shown.some((c) => c.id === before) ? before : "";
  showCase();
}

function showCase() {
  const c = currentCase();
  $("case-card").hidden = !c;
  $("sheet").hidden = !c || !session();
  if (!c) return;
  $("case-title").textContent = title(c);
  $("case-materials").textContent = (c.materials || []).join(", "); // a library cached before materials existed has none
  $("case-does").textContent = c.educator_does;
  $("case-says").textContent = c.educator_says;
  renderSheet();
  refreshCount();
}

function levelButtons(item, chosen, onPick) {
  return el(
    "div",
    { class: "levels", role: "group", "aria-label": item.text },
    ...item.levels.map((l) => {
      const b = el(
        "button",
        { type: "button", class: "level", "data-item": item.id, "data-level": String(l.level), "aria-pressed": String(chosen === l.level) },
        el("span", { class: "level-n" }, String(l.level)),
        el("span", { class: "level-text" }, l.descriptor),
      );
      b.addEventListener("click", () => onPick(l.level));
      return b;
    }),
  );
}

function renderSheet() {
  const c = currentCase();
  if (!c) return;
  $("child-h").textContent = t("assess_child", { n: child });
  $("items").replaceChildren(
    ...c.rubric.map((item) =>
      el(
        "fieldset",
        { class: "rubric-item", "data-item": item.id },
        el("legend", {}, item.text),
        levelButtons(item, levels[item.id], (level) => {
          levels[item.id] = level;
          renderSheet();
        }),
      ),
    ),
  );
  $("undo").hidden = !(last && Date.now() - last.at < UNDO_MS);
}

async function pendingHere() {
  const c = currentCase();
  return (await listItems()).filter(
    (i) => ownedBy(i, owner()) && i.case_id === (c && c.id) && String(i.group_id) === $("group").value && !["sent", "refused"].includes(i.state),
  ).length;
}

async function renderCount() {
  const pending = await pendingHere();
  const parts = [];
  if (serverCount != null) parts.push(t("assess_count", { n: serverCount }));
  if (pending) parts.push(t("assess_count_pending", { n: pending }));
  $("count").textContent = parts.join(" · ");
  $("offline").hidden = navigator.onLine;
}

async function refreshCount() {
  const c = currentCase();
  if (!c || !$("group").value || !session()) return renderCount();
  try {
    const r = await fetch(`/api/sheets/count?case_id=${encodeURIComponent(c.id)}&group_id=${$("group").value}`, { credentials: "same-origin" });
    if (r.ok) serverCount = (await r.json()).n_recorded;
  } catch {
    // offline: the last known count stays, the queued sheets are counted as waiting
  }
  renderCount();
}

async function nextChild() {
  const c = currentCase();
  if (!c || !owner()) return;
  const missing = c.rubric.filter((item) => levels[item.id] == null);
  if (missing.length) {
    showError(t("assess_rate_all"));
    return;
  }
  choices.save();
  const body = {
    case_id: c.id,
    unit_id: Number($("unit").value),
    group_id: Number($("group").value),
    age_band: $("age-band").value,
    rated_on: $("rated-on").value || today(),
    levels: { ...levels },
  };
  const item = newJSONItem("/api/sheets", body, { case_id: c.id, group_id: body.group_id, child }, owner());
  // The form is cleared before the queue write is awaited, so a quick tap on the next child's
  // levels lands on the next child's sheet, never on this one's.
  const rated = levels;
  levels = {};
  child += 1;
  renderSheet();
  try {
    await putItem(item);
  } catch (err) {
    levels = rated; // nothing was queued: the levels come back for another try
    child -= 1;
    renderSheet();
    showError(String(err));
    return;
  }
  last = { key: item.key, at: Date.now() };
  showError("");
  $("flash").textContent = t("assess_saved");
  renderCount();
  sender.kick();
}

function showError(text) {
  $("sheet-error").hidden = !text;
  $("sheet-error").textContent = text;
}

async function undo() {
  if (!last) return;
  const key = last.key;
  let item = (await listItems()).find((i) => i.key === key);
  for (let n = 0; item && item.state === "sending" && n < 100; n++) {
    await new Promise((r) => setTimeout(r, 100)); // let the request in flight settle first
    item = (await listItems()).find((i) => i.key === key);
  }
  last = null;
  if (item && item.state === "sent") {
    const r = await fetch(`/api/sheets/${encodeURIComponent(item.result.sheet_id)}`, {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() },
    }).catch(() => null);
    if (!r || r.status !== 204) {
      const detail = r ? (await r.json().catch(() => ({}))).detail || `HTTP ${r.status}` : t("offline");
      $("flash").textContent = t("assess_undo_late", { detail });
      renderSheet();
      return;
    }
  }
  if (item) await deleteItem(key);
  child = Math.max(1, child - 1);
  $("flash").textContent = t("assess_undone");
  renderSheet();
  refreshCount();
}

const sender = new Sender({
  send: sendJSON,
  getCsrf: csrfToken,
  getOwner: owner,
  refreshSession: async () => Boolean(await loadSession().catch(() => null)),
  onChange: async (item, _pct, flags = {}) => {
    if (flags.signedOut) showSignedOut();
    if (item && item.state === "sent" && item.result && item.result.n_recorded != null) {
      serverCount = item.result.n_recorded;
    }
    if (item && item.state === "refused") {
      // the sheet itself was refused (422: which item and why): show it again for correction
      await deleteItem(item.key);
      if (last && last.key === item.key) last = null;
      const c = currentCase();
      if (c && c.id === item.body.case_id) {
        levels = { ...item.body.levels };
        child = item.child || child;
      }
      renderSheet();
      showError(t("assess_refused", { detail: item.detail }));
    }
    renderCount();
  },
});

// --- calibration

async function loadCalibration() {
  try {
    const r = await fetch("/api/calibration", { credentials: "same-origin" });
    if (r.ok) renderCalibration(await r.json());
  } catch {
    // offline: calibration needs the server (the reference levels are shown only after rating)
  }
}

function renderCalibration(list) {
  $("calibration").replaceChildren(...list.map(calibrationRow));
}

function calibrationRow(resp) {
  const chosen = { ...resp.my_levels };
  const li = el("li", { class: `calib ${resp.rated ? "rated" : ""}`, "data-response": resp.response_id });
  const draw = () => {
    const head = el("div", { class: "item-name" }, `${lang() === "en" ? resp.title_en : resp.title_sv}${resp.rated ? ` · ${t("calib_done")}` : ""}`);
    const text = el("p", {}, resp.text);
    const items = resp.rubric.map((item) => {
      if (resp.rated) {
        return el(
          "p",
          { class: "calib-result", "data-item": item.id },
          el("strong", {}, item.text),
          ` ${t("calib_mine")}: ${resp.my_levels[item.id] ?? "–"} · ${t("calib_reference")}: ${resp.reference[item.id]}`,
        );
      }
      return el(
        "fieldset",
        { class: "rubric-item" },
        el("legend", {}, item.text),
        levelButtons(item, chosen[item.id], (level) => {
          chosen[item.id] = level;
          draw();
        }),
      );
    });
    const extra = [];
    if (resp.rated) extra.push(el("p", { class: "calib-explanation" }, resp.explanation));
    else {
      const save = el("button", { type: "button", class: "calib-save" }, t("calib_rate"));
      const err = el("div", { class: "item-refusal", role: "alert" });
      save.addEventListener("click", async () => {
        if (resp.rubric.some((item) => chosen[item.id] == null)) {
          err.textContent = t("assess_rate_all");
          return;
        }
        const r = await fetch("/api/calibration/ratings", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
          body: JSON.stringify({ response_id: resp.response_id, levels: chosen }),
        }).catch(() => null);
        const data = r ? await r.json().catch(() => ({})) : {};
        if (r && r.status === 201) {
          li.replaceWith(calibrationRow(data));
        } else {
          err.textContent = r ? data.detail || `HTTP ${r.status}` : t("offline");
        }
      });
      extra.push(save, err);
    }
    li.replaceChildren(head, text, ...items, ...extra);
  };
  draw();
  return li;
}

// --- page

function showSignedOut() {
  $("signed-out").hidden = false;
  $("signed-out-text").textContent = t("session_expired");
  $("sheet").hidden = true;
}

async function loadCases() {
  try {
    const r = await fetch("/api/cases", { credentials: "same-origin" });
    if (r.ok) {
      cases = await r.json();
      localStorage.setItem(CASES_KEY, JSON.stringify(cases));
      return;
    }
  } catch {
    // offline: the library kept from the last visit
  }
  try {
    cases = JSON.parse(localStorage.getItem(CASES_KEY) || "[]");
  } catch {
    cases = [];
  }
}

async function main() {
  $("rated-on").value = today();
  $("rated-on").max = today();
  let s = null;
  try {
    s = await loadSession();
  } catch {
    // offline at start
  }
  if (s && !["educator", "admin"].includes(s.user.role)) {
    location.href = "/";
    return;
  }
  setupLanguageSwitch(() => {
    renderTopBar();
    if (session()) {
      fillCases();
      loadCalibration();
    }
    renderCount();
  });
  if (!s) {
    $("signed-out").hidden = false;
    $("signed-out-text").textContent = t("sign_in_first");
    return;
  }
  renderTopBar();
  await loadCases();
  fillUnits();
  for (const id of ["unit"]) $(id).addEventListener("change", () => (fillGroups(), choices.save()));
  $("group").addEventListener("change", () => (fillGroups({ group_id: $("group").value }), choices.save()));
  $("age-band").addEventListener("change", () => (fillCases(), choices.save()));
  $("area").addEventListener("change", () => (fillCases(), choices.save()));
  $("case").addEventListener("change", () => {
    levels = {};
    child = 1;
    serverCount = null;
    showError("");
    showCase();
    choices.save();
  });
  $("next-child").addEventListener("click", nextChild);
  $("undo").addEventListener("click", undo);
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    location.href = "/";
  });
  addEventListener("online", () => (renderCount(), refreshCount()));
  addEventListener("offline", renderCount);
  setInterval(() => {
    if (last && Date.now() - last.at >= UNDO_MS) {
      last = null;
      renderSheet();
    }
  }, 5000);
  applyTranslations();
  loadCalibration();
  await renderCount();
  sender.resume();
}

main();
