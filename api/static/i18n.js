// Every user-facing string of the pages, Swedish (default) and English, in one place.
// Elements carry data-i18n="key" (text), data-i18n-placeholder / data-i18n-aria (attributes).

export const STRINGS = {
  sv: {
    app_title: "Spira",
    tagline: "Enhetsnivå: inga barn identifieras. Varje siffra visas med osäkerhet (90 % intervall) och antal foton.",
    language: "Språk",
    username: "Användarnamn",
    password: "Lösenord",
    sign_in: "Logga in",
    sign_out: "Logga ut",
    signing_in: "Loggar in …",
    signed_in_as: "Inloggad som {user} ({role})",
    sign_in_first: "Logga in för att fortsätta.",
    session_expired: "Sessionen har gått ut. Logga in igen – fotona i kön ligger kvar.",
    wrong_password: "Fel användarnamn eller lösenord.",
    rate_limited: "För många misslyckade inloggningar. Vänta fem minuter.",
    network_error: "Ingen kontakt med servern. Försök igen.",
    role_educator: "pedagog",
    role_principal: "rektor",
    role_researcher: "forskare",
    role_admin: "administratör",
    // landing page for principals, researchers, admins
    your_units: "Dina enheter",
    open_profile: "Öppna profilen",
    upload_link: "Ladda upp foton",
    term: "Termin",
    n_photos: "Foton (n)",
    mean_stage: "Medelstadium",
    age_index: "Åldersjusterat index",
    too_few: "för få för att visa",
    no_photos_yet: "Inga bedömda foton ännu.",
    loading: "Hämtar …",
    profile_error: "Profilen kunde inte hämtas: {detail}",
    interval_note: "Värde [90 % intervall]. Beskriver enheten, inte enskilda barn.",
    // upload page
    upload_title: "Ladda upp foton",
    unit: "Enhet",
    group: "Barngrupp",
    age_band: "Åldersgrupp",
    age_band_years: "{band} år",
    activity: "Aktivitet",
    activity_placeholder: "t.ex. teckning, lera, bygg",
    captured_on: "Fotodatum",
    take_photo: "Ta foto",
    choose_photos: "Välj från bilder",
    choose_first: "Välj enhet, barngrupp och aktivitet först.",
    queue_title: "Kö",
    queue_empty: "Inga foton i kön.",
    clear_done: "Rensa skickade",
    state_preparing: "Förbereder …",
    state_queued: "I kö",
    state_sending: "Skickar … {pct} %",
    state_waiting: "Ingen kontakt – nytt försök om {s} s",
    state_paused: "Väntar på inloggning",
    state_sent: "Skickad ✓",
    state_already: "Fanns redan – sparad en gång ✓",
    state_refused: "Avvisad",
    offline: "Ingen uppkoppling. Fotona sparas på plattan och skickas när uppkopplingen är tillbaka.",
    pending_one: "1 foto väntar på att skickas.",
    pending_count: "{n} foton väntar på att skickas.",
    privacy_note: "Ansikten suddas och platsdata tas bort innan fotot sparas. Skriv aldrig barns namn.",
    // refusals (the API's reasons, translated)
    refused_format: "Filformatet stöds inte. Använd JPEG, PNG, WebP eller HEIC.",
    refused_too_large: "Filen är för stor. Ta fotot med lägre upplösning.",
    refused_too_many_pixels: "Bilden har för många pixlar. Ta fotot med lägre upplösning.",
    refused_truncated: "Filen är ofullständig (avbruten överföring?). Ta eller välj fotot igen.",
    refused_corrupt: "Filen är skadad. Välj originalfotot igen.",
    refused_empty: "Filen är tom. Välj fotot igen.",
    refused_too_small: "Bilden är för liten. Fotografera teckningen närmare.",
    refused_age_band: "Åldersgruppen är inte giltig.",
    refused_not_your_unit: "Du får inte ladda upp till den här enheten.",
    refused_group: "Barngruppen hör inte till enheten.",
    refused_unit: "Enheten eller barngruppen finns inte.",
    refused_activity: "Aktiviteten måste vara 1–120 tecken.",
    refused_date: "Fotodatumet ligger i framtiden.",
    refused_other: "Fotot avvisades.",
    api_reason: "Serverns svar: {detail}",
  },
  en: {
    app_title: "Spira",
    tagline: "Unit level: no child is identified. Every figure is shown with its uncertainty (90 % interval) and number of photos.",
    language: "Language",
    username: "Username",
    password: "Password",
    sign_in: "Sign in",
    sign_out: "Sign out",
    signing_in: "Signing in …",
    signed_in_as: "Signed in as {user} ({role})",
    sign_in_first: "Sign in to continue.",
    session_expired: "Your session has expired. Sign in again – the photos in the queue are kept.",
    wrong_password: "Wrong username or password.",
    rate_limited: "Too many failed sign-ins. Wait five minutes.",
    network_error: "No contact with the server. Try again.",
    role_educator: "educator",
    role_principal: "principal",
    role_researcher: "researcher",
    role_admin: "administrator",
    your_units: "Your units",
    open_profile: "Open the profile",
    upload_link: "Upload photos",
    term: "Term",
    n_photos: "Photos (n)",
    mean_stage: "Mean stage",
    age_index: "Age-adjusted index",
    too_few: "too few to show",
    no_photos_yet: "No scored photos yet.",
    loading: "Loading …",
    profile_error: "The profile could not be loaded: {detail}",
    interval_note: "Value [90 % interval]. Describes the unit, not individual children.",
    upload_title: "Upload photos",
    unit: "Unit",
    group: "Group",
    age_band: "Age band",
    age_band_years: "{band} years",
    activity: "Activity",
    activity_placeholder: "e.g. drawing, clay, building",
    captured_on: "Photo date",
    take_photo: "Take photo",
    choose_photos: "Choose from library",
    choose_first: "Choose unit, group and activity first.",
    queue_title: "Queue",
    queue_empty: "No photos in the queue.",
    clear_done: "Clear sent",
    state_preparing: "Preparing …",
    state_queued: "Queued",
    state_sending: "Sending … {pct} %",
    state_waiting: "No connection – retrying in {s} s",
    state_paused: "Waiting for sign-in",
    state_sent: "Sent ✓",
    state_already: "Already there – stored once ✓",
    state_refused: "Refused",
    offline: "No connection. The photos are kept on the tablet and sent when the connection is back.",
    pending_one: "1 photo waiting to be sent.",
    pending_count: "{n} photos waiting to be sent.",
    privacy_note: "Faces are blurred and location data removed before a photo is stored. Never write children's names.",
    refused_format: "This file format is not supported. Use JPEG, PNG, WebP or HEIC.",
    refused_too_large: "The file is too large. Take the photo at a lower resolution.",
    refused_too_many_pixels: "The image has too many pixels. Take the photo at a lower resolution.",
    refused_truncated: "The file is incomplete (interrupted transfer?). Take or choose the photo again.",
    refused_corrupt: "The file is damaged. Choose the original photo again.",
    refused_empty: "The file is empty. Choose the photo again.",
    refused_too_small: "The image is too small. Photograph the drawing from closer.",
    refused_age_band: "The age band is not valid.",
    refused_not_your_unit: "You may not upload to this unit.",
    refused_group: "The group does not belong to the unit.",
    refused_unit: "The unit or group does not exist.",
    refused_activity: "The activity must be 1–120 characters.",
    refused_date: "The photo date lies in the future.",
    refused_other: "The photo was refused.",
    api_reason: "The server said: {detail}",
  },
};

const LANG_KEY = "spira.lang";

/** The chosen language: "sv" (default) or "en", remembered in localStorage. */
export function lang() {
  const stored = localStorage.getItem(LANG_KEY);
  return stored === "en" ? "en" : "sv";
}

/** The string for `key` in the current language, with {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const table = STRINGS[lang()];
  const text = table[key] ?? STRINGS.sv[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Translate every element below `root` that carries data-i18n attributes. */
export function applyTranslations(root = document) {
  document.documentElement.lang = lang();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
}

/**
 * Wire the language switch (buttons with data-lang) and re-render on change.
 * `onChange` re-renders the dynamic parts of the page.
 */
export function setupLanguageSwitch(onChange = () => {}) {
  const sync = () => {
    for (const b of document.querySelectorAll("[data-lang]")) {
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang()));
    }
    applyTranslations();
    onChange();
  };
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      localStorage.setItem(LANG_KEY, b.dataset.lang);
      sync();
    });
  }
  sync();
}

/**
 * The translated message for an API refusal: the known reasons map to a Swedish/English sentence,
 * anything else shows the API's own `detail`. Returns {message, detail}.
 */
export function refusalMessage(status, detail) {
  const d = String(detail || "").toLowerCase();
  const rules = [
    [status === 415 || d.includes("accepted: jpeg") || d.includes("not supported"), "refused_format"],
    [d.includes("too many pixels") || d.includes("mp); the"), "refused_too_many_pixels"],
    [status === 413 || d.includes("larger than") || d.includes("the limit is"), "refused_too_large"],
    [d.includes("truncated") || d.includes("ends early"), "refused_truncated"],
    [d.includes("empty"), "refused_empty"],
    [d.includes("damaged") || d.includes("corrupt"), "refused_corrupt"],
    [d.includes("shorter side") || d.includes("holds no image"), "refused_too_small"],
    [d.includes("age band"), "refused_age_band"],
    [d.includes("may not upload"), "refused_not_your_unit"],
    [d.includes("does not belong to unit"), "refused_group"],
    [d.includes("no such unit"), "refused_unit"],
    [d.includes("activity"), "refused_activity"],
    [d.includes("future"), "refused_date"],
  ];
  const hit = rules.find(([match]) => match);
  return { message: t(hit ? hit[1] : "refused_other"), detail: String(detail || "") };
}
