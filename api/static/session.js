// The page session: sign in/out through /session/*, and fetch with the CSRF token on writes.
// The session cookie is HttpOnly; the page only ever holds the CSRF token (in memory).

let current = null; // {csrf_token, expires_in, user}

/** The current session from GET /session/me, or null when not signed in (or expired). */
export async function loadSession() {
  const r = await fetch("/session/me", { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) {
    current = null;
    return null;
  }
  if (!r.ok) throw new Error(`GET /session/me: ${r.status}`);
  current = await r.json();
  return current;
}

/** The session loaded last (null before loadSession or after sign-out). */
export function session() {
  return current;
}

/** The CSRF token to send as X-CSRF-Token on writes ("" when not signed in). */
export function csrfToken() {
  return current ? current.csrf_token : "";
}

/**
 * Sign in with username and password. Returns {ok, session} or {ok: false, status, detail}.
 */
export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch("/session/login", { method: "POST", body, credentials: "same-origin" });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) return { ok: false, status: r.status, detail: data.detail || "" };
  current = data;
  return { ok: true, session: data };
}

/** Sign out (clears the cookie); always resolves. */
export async function signOut() {
  try {
    await fetch("/session/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() },
    });
  } finally {
    current = null;
  }
}

/** GET a JSON resource with the session cookie. Returns {ok, status, data}. */
export async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const data = await r.json().catch(() => ({}));
  return { ok: r.ok, status: r.status, data };
}

/** Where a role starts after signing in. */
export function homeFor(role) {
  return role === "educator" ? "/upload" : "/";
}
