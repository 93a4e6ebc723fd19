// What an educator chose once on a tablet page (unit, group, age band, ...), remembered per page in
// localStorage so the next visit starts there, and today's date as the date inputs want it. Shared
// by the upload and the assessment pages.

import { $ } from "./dom.js";

/** Today's local date as YYYY-MM-DD. */
export function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/**
 * The choice stored under `key`: `saved()` reads it ({} when none or unreadable), `save()` stores
 * the current values of the form fields in `fields` (stored name -> element id).
 */
export function remembered(key, fields) {
  return {
    saved() {
      try {
        return JSON.parse(localStorage.getItem(key) || "{}");
      } catch {
        return {};
      }
    },
    save() {
      localStorage.setItem(key, JSON.stringify(Object.fromEntries(Object.entries(fields).map(([name, id]) => [name, $(id).value]))));
    },
  };
}
