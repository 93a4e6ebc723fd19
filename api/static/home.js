// The landing page: sign in, then educators go to /upload; principals, researchers and admins see
// their units with the current progression figures (suppressed figures say so) and a link to
// each unit's full profile page (/units/{id}).

import { $, el } from "./dom.js";
import { setupLanguageSwitch, t } from "./i18n.js";
import { getJSON, homeFor, loadSession, session, signIn, signOut } from "./session.js";
import { renderTopBar } from "./topbar.js";

let profiles = null; // [{unit, profile|null, error}] once loaded

/** "value [lo, hi]" for an interval, or the suppression notice when it is withheld. */
function interval(x) {
  if (!x) return el("span", { class: "suppressed" }, t("too_few"));
  const f = (v) => v.toFixed(2);
  return el("span", {}, `${f(x.value)} [${f(x.lo)}, ${f(x.hi)}]`);
}

function unitCard({ unit, profile, error }) {
  const title = el("h2", {}, el("a", { href: `/units/${unit.id}` }, unit.name));
  const card = el("article", { class: "unit-card", "data-unit-id": String(unit.id) }, title);
  if (error) {
    card.append(el("p", { class: "error" }, t("profile_error", { detail: error })));
    return card;
  }
  if (!profile || !profile.terms.length) {
    card.append(el("p", { class: "muted" }, t("no_photos_yet")));
  } else {
    const head = el(
      "tr",
      {},
      ...["term", "n_photos", "mean_stage", "age_index"].map((k) => el("th", { scope: "col" }, t(k))),
    );
    const rows = profile.terms.map((term) =>
      el(
        "tr",
        { "data-term": term.term },
        el("th", { scope: "row" }, term.term),
        el("td", { class: "n-photos" }, String(term.n_photos)),
        el("td", {}, interval(term.mean_stage)),
        el("td", {}, interval(term.index)),
      ),
    );
    card.append(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
  }
  card.append(el("p", {}, el("a", { class: "button secondary", href: `/units/${unit.id}` }, t("open_profile"))));
  return card;
}

function renderUnits() {
  const box = $("units");
  if (!profiles) {
    box.replaceChildren(el("p", { class: "muted" }, t("loading")));
    return;
  }
  box.replaceChildren(...profiles.map(unitCard));
  if (session() && session().user.role === "admin") {
    box.prepend(el("p", {}, el("a", { class: "button", href: "/upload" }, t("upload_link"))));
  }
  if (session() && ["researcher", "admin"].includes(session().user.role)) {
    box.prepend(
      el(
        "p",
        { class: "exports" },
        el("a", { class: "button secondary", href: "/research", id: "research-link" }, t("research_link")),
        el("a", { class: "button secondary", href: "/network", id: "network-link" }, t("network_link")),
      ),
    );
  }
}

async function loadProfiles() {
  profiles = null;
  renderUnits();
  const units = await getJSON("/api/units");
  const list = units.ok ? units.data : [];
  profiles = await Promise.all(
    list.map(async (unit) => {
      const r = await getJSON(`/api/units/${unit.id}/profile`);
      return { unit, profile: r.ok ? r.data : null, error: r.ok ? "" : r.data.detail || `HTTP ${r.status}` };
    }),
  );
  renderUnits();
}

async function showSignedIn() {
  const s = session();
  if (homeFor(s.user.role) !== "/") {
    location.replace(homeFor(s.user.role));
    return;
  }
  $("login-section").hidden = true;
  $("units-section").hidden = false;
  renderTopBar();
  await loadProfiles();
}

function showLogin() {
  $("login-section").hidden = false;
  $("units-section").hidden = true;
  renderTopBar();
  $("username").focus();
}

async function main() {
  setupLanguageSwitch(() => {
    renderTopBar();
    if (!$("units-section").hidden) renderUnits();
  });
  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("login-button");
    button.disabled = true;
    button.textContent = t("signing_in");
    $("login-error").textContent = "";
    try {
      const r = await signIn($("username").value.trim(), $("password").value);
      if (r.ok) {
        $("password").value = "";
        await showSignedIn();
      } else {
        $("login-error").textContent =
          r.status === 429 ? t("rate_limited") : r.status === 401 ? t("wrong_password") : r.detail;
      }
    } catch {
      $("login-error").textContent = t("network_error");
    } finally {
      button.disabled = false;
      button.textContent = t("sign_in");
    }
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    profiles = null;
    showLogin();
  });
  const s = await loadSession().catch(() => null);
  if (s) await showSignedIn();
  else showLogin();
}

main();
