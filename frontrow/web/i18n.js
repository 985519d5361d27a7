// The page's language: ?lang=ko|en (then remembered), else the buyer's own
// choice (remembered), else the first of Korean or English among the
// browser's languages. Only the texts of the language in use are loaded. The
// server makes the same choice for the first paint (app.page_language): the
// remembered choice is also a cookie for it to read.
const SUPPORTED = ["ko", "en"];

function remember(value) {
  localStorage.setItem("lang", value);
  document.cookie = `lang=${value}; path=/; max-age=31536000; samesite=lax`;
}

function chosen() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (SUPPORTED.includes(asked)) {
    remember(asked);
    return asked;
  }
  const saved = localStorage.getItem("lang");
  if (SUPPORTED.includes(saved)) {
    if (!document.cookie.includes(`lang=${saved}`)) remember(saved);  // chosen before the cookie
    return saved;
  }
  for (const tag of navigator.languages?.length ? navigator.languages : [navigator.language || ""]) {
    const base = tag.slice(0, 2).toLowerCase();
    if (SUPPORTED.includes(base)) return base;
  }
  return "en";
}

export const lang = chosen();
const texts = (await import(`./i18n/${lang}.js`)).default;
export const locale = texts.locale;

export function t(key, params = {}) {
  const text = texts[key];
  if (text === undefined) throw new Error(`no text "${key}" in ${lang}`);
  return typeof text === "function" ? text(params) : text;
}

export const other = lang === "ko" ? "en" : "ko";

// A new language is a reload: the place in line and the seats held live on
// the server, so nothing is lost, and every text is drawn once, in one language.
export function switchLanguage() {
  remember(other);
  const url = new URL(location.href);
  if (!url.searchParams.has("lang")) return location.reload();
  url.searchParams.delete("lang");  // it would choose again
  location.replace(url);
}

// The HTML's own texts: [data-t] is the element's text, [data-t-attr] its
// attributes ("attr:key;attr:key"); [data-t-drop] only served the first paint.
export function translatePage() {
  document.documentElement.lang = lang;
  document.title = t("page.title");
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll("[data-t-attr]")) {
    for (const pair of el.dataset.tAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
  for (const el of document.querySelectorAll("[data-t-drop]")) el.remove();
  for (const el of document.querySelectorAll("[data-paint]")) el.hidden = false;
}

const numbers = new Intl.NumberFormat(locale);
export const formatNumber = (n) => numbers.format(n);
// As buyers write amounts: 80,000원 in Korean, ₩80,000 in English.
export const formatWon = (n) => (lang === "ko" ? `${numbers.format(n)}원` : `₩${numbers.format(n)}`);

// "100,000", "100 000", "100000원", "₩100,000": a whole number of won, or null.
export function parseWon(text) {
  const bare = String(text).trim().replace(/^₩|원$/g, "").replace(/[,\s]/g, "");
  return /^\d+$/.test(bare) && Number(bare) > 0 ? Number(bare) : null;
}

// The venue's zone by the name its buyers know (KST for Seoul), else the
// short name Intl gives (PST, GMT+1).
const ZONES = { "Asia/Seoul": "KST", "Asia/Tokyo": "JST", UTC: "UTC" };
export function zoneName(tz, at = new Date()) {
  if (ZONES[tz]) return ZONES[tz];
  const part = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "short" })
    .formatToParts(at).find((p) => p.type === "timeZoneName");
  return part ? part.value : tz;
}
