// The shell's top bar (api/templates/shell.html), filled the same way on every page.

import { $ } from "./dom.js";
import { setupLanguageSwitch, t } from "./i18n.js";
import { loadSession, session, signOut } from "./session.js";

/** Who is signed in (user and role) and the sign-out button, or neither when nobody is. */
export function renderTopBar() {
  const s = session();
  $("who").textContent = s ? t("signed_in_as", { user: s.user.username, role: t(`role_${s.user.role}`) }) : "";
  $("sign-out").hidden = !s;
  // Educators (and admins) reach the assessment page from every page's top bar.
  let link = $("assess-link");
  if (!link) {
    link = document.createElement("a");
    link.id = "assess-link";
    link.className = "nav-link";
    link.href = "/assess";
    $("who").after(link);
  }
  link.textContent = t("assess_link");
  link.hidden = !(s && ["educator", "admin"].includes(s.user.role)) || location.pathname === "/assess";
}

/**
 * The start of a page for signed-in readers: the language switch (re-rendering the top bar and
 * then the page with `render`), the sign-out button, and the session. Returns the session, or null
 * after sending a visitor who is not signed in to the sign-in page.
 */
export async function startSignedInPage(render) {
  setupLanguageSwitch(() => {
    renderTopBar();
    render();
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    location.replace("/");
  });
  const s = await loadSession().catch(() => null);
  if (!s) {
    location.replace("/");
    return null;
  }
  renderTopBar();
  return s;
}
