// The upload queue: photos waiting to be sent live in IndexedDB (blob + metadata + idempotency key +
// state), so a reload, a closed tab or a lost connection loses nothing. One sender sends them in
// order; network failures are retried with exponential backoff using the same Idempotency-Key, so
// the server stores each photo once however many times it is sent.
//
// Each item belongs to the account that took the photo (`owner`): the sender sends only the signed-in
// account's items, so on a shared tablet another educator's photos are never sent under the wrong
// account; they wait for their owner (or are discarded on request). Only a refusal of the photo
// itself (DEFINITIVE: unreadable, wrong format, too large, invalid) removes it; a session or
// permission answer (401/403) keeps it queued and asks for a new sign-in.

// The queue holds photos (upload page, database "spira-upload") or JSON requests such as response
// sheets (assessment page, `useDatabase("spira-assess")`, sent with `sendJSON`): the same durable,
// owner-bound, idempotent sending for both.
let DB_NAME = "spira-upload";
const STORE = "queue";
const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 60000;

/** Item states: preparing → queued → sending → sent | refused; queued ⇄ waiting (backoff);
 * held: answered with another 4xx (e.g. the unit is gone) — kept, retried after the next sign-in. */
export const FINAL_STATES = new Set(["sent", "refused"]);

/** Answers that refuse the photo itself: sending it again cannot help, so it is removed (with its
 * reason shown). Everything else keeps the photo on the tablet. */
export const DEFINITIVE = new Set([400, 413, 415, 422]);

/** Whether an item may be sent by (and shown to) the account `owner`. Items from before owners
 * were recorded have none: they wait like another account's. */
export function ownedBy(item, owner) {
  return Boolean(owner) && item.owner === owner;
}

function openDB() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(STORE, { keyPath: "key" });
      store.createIndex("added_at", "added_at");
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let dbPromise = null;

/** Use the IndexedDB database `name` for this page's queue (call before any other function). */
export function useDatabase(name) {
  if (name !== DB_NAME) {
    DB_NAME = name;
    dbPromise = null;
  }
}

function db() {
  dbPromise ??= openDB();
  return dbPromise;
}

async function tx(mode, fn) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const transaction = database.transaction(STORE, mode);
    const store = transaction.objectStore(STORE);
    let result;
    Promise.resolve(fn(store)).then((r) => (result = r));
    transaction.oncomplete = () => resolve(result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Every queued item, oldest first. */
export async function listItems() {
  const items = await tx("readonly", (store) => request(store.index("added_at").getAll()));
  return items || [];
}

/** Store (insert or replace) one item. */
export async function putItem(item) {
  await tx("readwrite", (store) => request(store.put(item)));
}

/** Delete one item (e.g. a sheet taken back before it was sent). */
export async function deleteItem(key) {
  await tx("readwrite", (store) => request(store.delete(key)));
}

/** Update fields of one item (no-op when it is gone). Returns the updated item or null. */
export async function updateItem(key, fields) {
  return tx("readwrite", async (store) => {
    const item = await request(store.get(key));
    if (!item) return null;
    Object.assign(item, fields);
    await request(store.put(item));
    return item;
  });
}

/** Delete items in a final state (sent or refused) queued more than `olderThanMs` ago; returns how many. */
export async function clearFinished(olderThanMs = 0) {
  const cutoff = Date.now() - olderThanMs;
  const done = (await listItems()).filter((i) => FINAL_STATES.has(i.state) && i.added_at <= cutoff);
  await tx("readwrite", (store) => Promise.all(done.map((i) => request(store.delete(i.key)))));
  return done.length;
}

/** Delete the items of accounts other than `owner` that are not sent yet; returns how many. */
export async function discardForeign(owner) {
  const foreign = (await listItems()).filter((i) => !ownedBy(i, owner) && !FINAL_STATES.has(i.state));
  await tx("readwrite", (store) => Promise.all(foreign.map((i) => request(store.delete(i.key)))));
  return foreign.length;
}

/** A new queue item for a prepared photo of account `owner`; `meta` holds unit_id, group_id,
 * age_band, activity, captured_on. */
export function newItem(blob, name, meta, owner) {
  return {
    key: crypto.randomUUID(), // the Idempotency-Key: fixed at queueing time, reused by every retry
    owner, // the account that took the photo: only its session sends it
    blob,
    name,
    size: blob.size,
    ...meta,
    state: "queued",
    attempts: 0,
    next_at: 0,
    detail: "",
    status: 0,
    reason: "",
    photo_id: "",
    added_at: Date.now(),
  };
}

/** Delay before retry number `attempts` (1-based): 1 s, 2 s, 4 s … up to 60 s, with ±20 % jitter. */
export function backoffDelay(attempts) {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

/**
 * Send one item with XMLHttpRequest (for upload progress). Resolves {status, data}; status 0 means
 * the request never got an answer (network down, server unreachable, connection reset).
 */
function sendOnce(item, csrf, onProgress) {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("file", item.blob, item.name);
    form.append("unit_id", String(item.unit_id));
    form.append("group_id", String(item.group_id));
    form.append("age_band", item.age_band);
    form.append("activity", item.activity);
    if (item.captured_on) form.append("captured_on", item.captured_on);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/photos");
    xhr.withCredentials = true;
    xhr.responseType = "json";
    xhr.timeout = 120000;
    xhr.setRequestHeader("Idempotency-Key", item.key);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(Math.round((100 * e.loaded) / e.total));
    };
    xhr.onload = () => resolve({ status: xhr.status, data: xhr.response || {} });
    xhr.onerror = () => resolve({ status: 0, data: {} });
    xhr.ontimeout = () => resolve({ status: 0, data: {} });
    xhr.onabort = () => resolve({ status: 0, data: {} });
    xhr.send(form);
  });
}

/** A new queue item for a JSON request of account `owner` (e.g. a response sheet: POST `url`
 * with `body`); `meta` is kept with it for the page. Sent by a Sender built with `send: sendJSON`. */
export function newJSONItem(url, body, meta, owner) {
  return {
    key: crypto.randomUUID(), // the Idempotency-Key, reused by every retry
    owner,
    url,
    body,
    ...meta,
    state: "queued",
    attempts: 0,
    next_at: 0,
    detail: "",
    status: 0,
    result: null,
    added_at: Date.now(),
  };
}

/** Send a JSON item once (fetch); resolves {status, data} like the photo sender, 0 when no answer. */
export async function sendJSON(item, csrf) {
  try {
    const res = await fetch(item.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Idempotency-Key": item.key, "X-CSRF-Token": csrf },
      body: JSON.stringify(item.body),
    });
    let data = {};
    try {
      data = await res.json();
    } catch {
      data = {};
    }
    return { status: res.status, data: data || {} };
  } catch {
    return { status: 0, data: {} };
  }
}

/** Whether an answer is worth retrying later (no answer, overload, server trouble). */
function transient(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

/**
 * The sender: sends queued items one at a time, oldest first.
 *
 * `getCsrf()` returns the CSRF token; `refreshSession()` reloads it (resolves false when signed
 * out); `onChange(item, progress)` is called whenever an item changes.
 */
export class Sender {
  constructor({ getCsrf, getOwner, refreshSession, onChange, send = sendOnce }) {
    this.send = send; // (item, csrf, onProgress) -> {status, data}: photos by default
    this.getCsrf = getCsrf;
    this.getOwner = getOwner; // the signed-in account ("" when none): only its items are sent
    this.refreshSession = refreshSession;
    this.onChange = onChange;
    this.running = false;
    this.again = false;
    this.paused = false; // signed out: wait for sign-in, keep everything queued
    this.timer = null;
    addEventListener("online", () => this.kick({ now: true }));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.kick({ now: true });
    });
  }

  /** Start a pass; `now` makes waiting items due immediately (connection is back). */
  async kick({ now = false } = {}) {
    if (now) {
      const owner = this.getOwner();
      for (const item of await listItems()) {
        if (item.state === "waiting" && ownedBy(item, owner)) {
          await updateItem(item.key, { state: "queued", next_at: 0 });
          this.onChange({ ...item, state: "queued", next_at: 0 });
        }
      }
    }
    if (this.paused) return;
    if (this.running) {
      this.again = true; // a pass is under way: make it look once more before it stops
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.paused);
    } finally {
      this.running = false;
    }
  }

  /** Resume after a new sign-in: held items of this account are tried again. */
  async resume() {
    this.paused = false;
    const owner = this.getOwner();
    for (const item of await listItems()) {
      if (item.state === "held" && ownedBy(item, owner)) await updateItem(item.key, { state: "queued", next_at: 0 });
    }
    this.kick({ now: true });
  }

  async pass() {
    for (;;) {
      const owner = this.getOwner();
      if (!owner) return;
      const items = (await listItems()).filter((i) => ownedBy(i, owner));
      // "sending" after a reload means the page died mid-request: send again (same key).
      const pending = items.filter((i) => ["queued", "waiting", "sending"].includes(i.state));
      if (!pending.length) return;
      const due = pending.filter((i) => (i.next_at || 0) <= Date.now());
      if (!due.length) {
        const next = Math.min(...pending.map((i) => i.next_at));
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.kick(), Math.max(50, next - Date.now()));
        return;
      }
      const stop = await this.sendItem(due[0]);
      if (stop) return;
    }
  }

  /** Send one item and record the outcome; returns true when the sender must stop (signed out). */
  async sendItem(item) {
    if (!ownedBy(item, this.getOwner())) return true; // never under another account
    const attempts = (item.attempts || 0) + 1;
    let current = await updateItem(item.key, { state: "sending", attempts });
    this.onChange(current, 0);
    let { status, data } = await this.send(current, this.getCsrf(), (pct) => this.onChange(current, pct));
    if (status === 403 && /csrf/i.test(data.detail || "")) {
      // The session was renewed in another tab: fetch the new token and send again at once.
      if (await this.refreshSession()) ({ status, data } = await this.send(current, this.getCsrf(), () => {}));
    }
    if (status === 200 || status === 201) {
      current = await updateItem(item.key, {
        state: "sent",
        status,
        reason: data.reason || "",
        photo_id: (data.photo && data.photo.id) || "",
        result: data, // the server's answer (e.g. the sheet id and count)
        detail: "",
        blob: null, // stored on the server: free the tablet's storage
      });
    } else if (status === 401 || status === 403) {
      // The session expired, was ended, or no longer allows this unit: the photo is fine. Keep
      // it queued and ask the educator to sign in again.
      current = await updateItem(item.key, { state: "queued", status, next_at: 0, detail: data.detail || "" });
      this.paused = true;
      this.onChange(current, null, { signedOut: true, status, detail: data.detail || "" });
      return true;
    } else if (transient(status)) {
      current = await updateItem(item.key, {
        state: "waiting",
        status,
        next_at: Date.now() + backoffDelay(attempts),
      });
    } else if (DEFINITIVE.has(status)) {
      // The photo itself is refused: drop its bytes (nothing to retry), keep the reason to show.
      current = await updateItem(item.key, { state: "refused", status, detail: data.detail || `HTTP ${status}`, blob: null });
    } else {
      // Another answer (e.g. 404: the unit or group is gone): keep the photo, stop retrying it
      // until the next sign-in, show why.
      current = await updateItem(item.key, { state: "held", status, detail: data.detail || `HTTP ${status}` });
    }
    this.onChange(current, null);
    return false;
  }
}
