// The frontrow HTTP API, and its errors as sentences a person understands.
import { formatWon, t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter, data = {}) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.data = data;  // the whole problem body (opens_at of a queue not open yet, ...)
  }
}

// The server's clock, as seen from here: countdowns use it, because a device
// clock that is a minute off would otherwise show a hold a minute too long.
// Date has whole seconds, so one answer only says the offset lies between
// Date - received and Date + 1 s - sent (plus the little a server's cached
// Date lags); answers at other phases of the second narrow that (their
// intersection), and one outside it (either clock set anew) starts afresh.
// An answer the browser may keep (max-age) can come from its cache, with an
// old Date: it says nothing of now.
const DATE_LAG_MS = 200;
const clock = { low: 0, high: 0, known: false };

export const serverNow = () => Date.now() + (clock.low + clock.high) / 2;

function learnClock(response, sentAt) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date) || /max-age=[1-9]/.test(response.headers.get("Cache-Control") || "")) return;
  const low = date - Date.now(), high = date + 1000 + DATE_LAG_MS - sentAt;
  if (!clock.known || low > clock.high || high < clock.low) Object.assign(clock, { low, high, known: true });
  else Object.assign(clock, { low: Math.max(clock.low, low), high: Math.min(clock.high, high) });
}

export async function call(method, path, { token, body, headers } = {}) {
  const init = { method, headers: { ...(headers || {}) } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  const sentAt = Date.now();
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "NETWORK", t("err.NETWORK"));
  }
  learnClock(response, sentAt);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.code || "HTTP_" + response.status, data.detail,
      Number(response.headers.get("Retry-After")) || null, data);
  }
  return data;
}

export { formatWon } from "./i18n.js";

const OWN_WORDS = new Set([
  "SEAT_UNAVAILABLE", "HOLD_LIMIT", "TICKET_LIMIT", "HOLD_EXPIRED", "BALANCE_LIMIT", "QUEUE_CLOSED",
  "SALE_NOT_OPEN", "TOKEN_EXPIRED", "TOKEN_WAITING", "TOKEN_DONE", "UNAUTHENTICATED", "FORBIDDEN",
  "NOT_FOUND", "NETWORK",
]);

// An error as a sentence in the page's language, by the API's `code`.
export function explain(error, context = {}) {
  const wait = t("err.wait", { s: error.retryAfter });
  const code = error.code;
  if (OWN_WORDS.has(code)) return t(`err.${code}`);
  switch (code) {
    case "INSUFFICIENT_BALANCE": return t("err.INSUFFICIENT_BALANCE", { missing: context.missing && formatWon(context.missing) });
    case "VALIDATION_FAILED": return t("err.VALIDATION_FAILED", { detail: error.message });
    case "PROOF_OF_WORK_REQUIRED": case "PROOF_OF_WORK_INVALID": return t("err.PROOF_OF_WORK");
    case "TOO_MANY_REQUESTS": case "BACKEND_UNAVAILABLE": return t(`err.${code}`) + wait;
    default: return t("err.other", { code }) + wait;
  }
}
