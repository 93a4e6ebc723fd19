// The educators' upload page: choose unit, group (age band) and activity once, then take or pick
// photos; each is downscaled on the tablet, queued in IndexedDB and sent by the queue's sender.

import { remembered, today } from "./choice.js";
import { $ } from "./dom.js";
import { applyTranslations, refusalMessage, setupLanguageSwitch, t } from "./i18n.js";
import { FINAL_STATES, Sender, clearFinished, discardForeign, listItems, newItem, ownedBy, putItem } from "./queue.js";
import { csrfToken, loadSession, session, signOut } from "./session.js";
import { renderTopBar } from "./topbar.js";

const MAX_SIDE = 2048; // px on the long side: plenty for stage scoring, a fraction of the bytes
const JPEG_QUALITY = 0.9;
const choices = remembered("spira.upload.choice", { unit_id: "unit", group_id: "group", age_band: "age-band", activity: "activity" });
const FINISHED_KEPT_MS = 24 * 60 * 60 * 1000; // sent/refused items stay listed for a day

const progress = new Map(); // item key -> upload percent while sending
const thumbs = new Map(); // item key -> object URL of its preview

const THUMB_SIDE = 192; // px: the preview kept with the queue item, also after it was sent

/** The bitmap drawn at `w`×`h` px and encoded as a JPEG blob of `quality` (0–1). */
async function encodeJPEG(bitmap, w, h, quality) {
  if (typeof OffscreenCanvas !== "undefined") {
    const canvas = new OffscreenCanvas(w, h);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
    return canvas.convertToBlob({ type: "image/jpeg", quality });
  }
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
}

/** Width and height scaled so the long side is at most `side` px (never enlarged). */
function fit(bitmap, side) {
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  return [Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale))];
}

/**
 * The photo as a JPEG blob at most MAX_SIDE px on its long side (EXIF orientation applied, metadata
 * dropped by re-encoding), with a small preview. Returns the original file (and no preview) when
 * the browser cannot decode it (e.g. HEIC outside Safari): the server recognises the format from
 * the bytes and either accepts it or says clearly why not.
 */
export async function downscale(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return { blob: file, thumb: null, name: file.name || "photo", scaled: false };
  }
  try {
    const [w, h] = fit(bitmap, MAX_SIDE);
    const blob = await encodeJPEG(bitmap, w, h, JPEG_QUALITY);
    const thumb = await encodeJPEG(bitmap, ...fit(bitmap, THUMB_SIDE), 0.7);
    const base = (file.name || "photo").replace(/\.[^.]*$/, "");
    return { blob, thumb, name: `${base}.jpg`, scaled: true, width: w, height: h };
  } finally {
    bitmap.close();
  }
}

/** The signed-in account ("" when none): the owner of the photos taken now. */
function currentOwner() {
  return session() ? session().user.username : "";
}

function units() {
  return session() ? session().user.units : [];
}

function fillUnits() {
  const choice = choices.saved();
  const select = $("unit");
  select.replaceChildren(...units().map((u) => new Option(u.name, String(u.id))));
  if (units().some((u) => String(u.id) === choice.unit_id)) select.value = choice.unit_id;
  fillGroups(choice);
  if (choice.activity) $("activity").value = choice.activity;
}

function fillGroups(choice = {}) {
  const unit = units().find((u) => String(u.id) === $("unit").value);
  const groups = unit ? unit.groups : [];
  const select = $("group");
  select.replaceChildren(
    ...groups.map((g) => new Option(`${g.name} (${t("age_band_years", { band: g.age_band })})`, String(g.id))),
  );
  if (groups.some((g) => String(g.id) === choice.group_id)) select.value = choice.group_id;
  fillAgeBand(choice);
}

function fillAgeBand(choice = {}) {
  const unit = units().find((u) => String(u.id) === $("unit").value);
  const group = unit && unit.groups.find((g) => String(g.id) === $("group").value);
  // The group's band first; the others stay available for mixed-age groups.
  const bands = ["1-2", "2-3", "3-4", "4-5", "5-6"];
  const select = $("age-band");
  select.replaceChildren(...bands.map((b) => new Option(t("age_band_years", { band: b }), b)));
  select.value = choice.age_band && choice.group_id === $("group").value ? choice.age_band : group ? group.age_band : "3-4";
}

function choiceComplete() {
  return Boolean($("unit").value && $("group").value && $("age-band").value && $("activity").value.trim());
}

function updatePickers() {
  const ready = choiceComplete() && Boolean(session());
  for (const id of ["camera-label", "library-label"]) $(id).classList.toggle("disabled", !ready);
  for (const id of ["camera", "library"]) $(id).disabled = !ready;
  $("choose-first").hidden = ready;
}

async function enqueue(files) {
  const owner = currentOwner();
  if (!choiceComplete() || !owner) return;
  choices.save();
  const meta = {
    unit_id: Number($("unit").value),
    group_id: Number($("group").value),
    age_band: $("age-band").value,
    activity: $("activity").value.trim(),
    captured_on: $("captured-on").value || today(),
  };
  for (const file of files) {
    const prepared = await downscale(file);
    const item = newItem(prepared.blob, prepared.name, meta, owner);
    item.scaled = prepared.scaled;
    item.thumb = prepared.thumb;
    await putItem(item);
    await render();
  }
  sender.kick();
}

function stateText(item) {
  const pct = progress.get(item.key);
  switch (item.state) {
    case "sending":
      return t("state_sending", { pct: pct ?? 0 });
    case "waiting":
      return t("state_waiting", { s: Math.max(0, Math.ceil((item.next_at - Date.now()) / 1000)) });
    case "sent":
      return item.reason === "replay" || item.reason === "duplicate" ? t("state_already") : t("state_sent");
    case "refused":
      return t("state_refused");
    case "held":
      return t("state_held");
    default:
      return sender.paused ? t("state_paused") : t("state_queued");
  }
}

function itemRow(item) {
  const li = document.createElement("li");
  li.className = `item state-${item.state}`;
  li.dataset.key = item.key;
  li.dataset.state = item.state;
  if (item.thumb && !thumbs.has(item.key)) thumbs.set(item.key, URL.createObjectURL(item.thumb));
  let img;
  if (thumbs.has(item.key)) {
    img = document.createElement("img");
    img.alt = "";
    img.src = thumbs.get(item.key);
  } else {
    img = document.createElement("div"); // not an image the browser can show
    img.setAttribute("aria-hidden", "true");
  }
  img.className = "thumb";
  const body = document.createElement("div");
  body.className = "item-body";
  const name = document.createElement("div");
  name.className = "item-name";
  name.textContent = `${item.name} · ${item.activity} · ${Math.round(item.size / 1024)} kB`;
  const state = document.createElement("div");
  state.className = "item-state";
  state.textContent = stateText(item);
  body.append(name, state);
  if (item.state === "sending") {
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = progress.get(item.key) ?? 0;
    body.append(bar);
  }
  if (item.state === "held") {
    const raw = document.createElement("div");
    raw.className = "item-detail";
    raw.textContent = t("api_reason", { detail: item.detail });
    body.append(raw);
  }
  if (item.state === "refused") {
    const { message, detail } = refusalMessage(item.status, item.detail);
    const why = document.createElement("div");
    why.className = "item-refusal";
    why.setAttribute("role", "alert");
    why.textContent = message;
    const raw = document.createElement("div");
    raw.className = "item-detail";
    raw.textContent = t("api_reason", { detail });
    body.append(why, raw);
  }
  li.append(img, body);
  return li;
}

let renderQueued = false;
async function render() {
  // Only the signed-in account's photos are listed; another account's wait unseen (a count and
  // an offer to discard them), and nobody's are listed before a sign-in.
  const owner = currentOwner();
  const all = await listItems();
  const items = all.filter((i) => ownedBy(i, owner));
  const foreign = all.filter((i) => !ownedBy(i, owner) && !FINAL_STATES.has(i.state));
  $("foreign").hidden = !(owner && foreign.length);
  if (owner && foreign.length) {
    const users = [...new Set(foreign.map((i) => i.owner || "?"))].join(", ");
    $("foreign-text").textContent = t("foreign_waiting", { n: foreign.length, users });
  }
  const list = $("queue");
  list.replaceChildren(...items.slice().reverse().map(itemRow));
  $("queue-empty").hidden = items.length > 0;
  const waiting = items.filter((i) => !["sent", "refused"].includes(i.state)).length;
  $("pending").textContent = waiting
    ? t(waiting === 1 ? "pending_one" : "pending_count", { n: waiting })
    : !owner && foreign.length
      ? t("foreign_signed_out", { n: foreign.length })
      : "";
  $("clear-done").hidden = !items.some((i) => ["sent", "refused"].includes(i.state));
  $("offline").hidden = navigator.onLine;
  // Free previews of items that are gone
  for (const [key, url] of thumbs) {
    if (!items.some((i) => i.key === key)) {
      URL.revokeObjectURL(url);
      thumbs.delete(key);
    }
  }
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

async function refreshSession() {
  const s = await loadSession().catch(() => null);
  return Boolean(s);
}

const sender = new Sender({
  getCsrf: csrfToken,
  getOwner: currentOwner,
  refreshSession,
  onChange: (item, pct, flags = {}) => {
    if (item && pct != null) progress.set(item.key, pct);
    if (item && ["sent", "refused", "waiting"].includes(item.state)) progress.delete(item.key);
    if (flags.signedOut) showSignedOut(true, flags.status === 403 ? flags.detail : "");
    scheduleRender();
  },
});

function showSignedOut(expired, refusedDetail = "") {
  $("signed-out").hidden = false;
  $("signed-out-text").textContent = refusedDetail
    ? t("session_refused", { detail: refusedDetail })
    : expired
      ? t("session_expired")
      : t("sign_in_first");
  $("who").textContent = "";
  $("sign-out").hidden = true;
  updatePickers();
}

function showSignedIn() {
  const s = session();
  $("signed-out").hidden = true;
  $("sign-out").hidden = false;
  $("who").textContent = t("signed_in_as", { user: s.user.username, role: t(`role_${s.user.role}`) });
  renderTopBar(); // the link to the assessment page
  fillUnits();
  updatePickers();
}

async function main() {
  $("captured-on").value = today();
  $("captured-on").max = today();
  setupLanguageSwitch(() => {
    if (session()) showSignedIn();
    scheduleRender();
  });
  for (const id of ["camera", "library"]) {
    $(id).addEventListener("change", async (e) => {
      const files = Array.from(e.target.files || []);
      e.target.value = ""; // the same photo may be chosen again later
      await enqueue(files);
    });
  }
  $("unit").addEventListener("change", () => {
    fillGroups();
    choices.save();
    updatePickers();
  });
  $("group").addEventListener("change", () => {
    fillAgeBand();
    choices.save();
    updatePickers();
  });
  $("age-band").addEventListener("change", () => choices.save());
  $("activity").addEventListener("input", () => {
    choices.save();
    updatePickers();
  });
  $("discard-foreign").addEventListener("click", async () => {
    const owner = currentOwner();
    const n = (await listItems()).filter((i) => !ownedBy(i, owner) && !FINAL_STATES.has(i.state)).length;
    if (owner && n && confirm(t("discard_foreign_confirm", { n }))) {
      await discardForeign(owner);
      render();
    }
  });
  $("clear-done").addEventListener("click", async () => {
    await clearFinished();
    render();
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    location.href = "/";
  });
  addEventListener("online", async () => {
    scheduleRender();
    // Started offline: read the session now, then send what waits
    if (!session() && (await refreshSession())) {
      showSignedIn();
      sender.resume();
    }
  });
  addEventListener("offline", scheduleRender);
  // The countdown of waiting items
  setInterval(() => {
    if (document.querySelector(".state-waiting")) scheduleRender();
  }, 1000);

  await clearFinished(FINISHED_KEPT_MS);
  await render();
  let s = null;
  try {
    s = await loadSession();
  } catch {
    // Offline at start: the queue still shows; the sender starts when the session can be read.
  }
  if (s) {
    if (s.user.role !== "educator" && s.user.role !== "admin") {
      location.href = "/";
      return;
    }
    showSignedIn();
    await render();
    sender.resume();
  } else {
    showSignedOut(false);
  }
  applyTranslations();
}

main();
