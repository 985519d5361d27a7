// The frontrow HTTP API, and its errors as sentences a person understands.

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
// Date has whole seconds (hence + 500); the answer with the shortest round
// trip gives the best estimate, and a fresh one is taken now and then.
const clock = { offsetMs: 0, rttMs: Infinity, at: 0 };

export const serverNow = () => Date.now() + clock.offsetMs;

function learnClock(response, sentAt) {
  const date = Date.parse(response.headers.get("Date") || "");
  const now = Date.now();
  const rtt = now - sentAt;
  if (Number.isNaN(date) || (rtt > clock.rttMs && now - clock.at < 60_000)) return;
  Object.assign(clock, { offsetMs: date + 500 - (sentAt + now) / 2, rttMs: rtt, at: now });
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
    throw new ApiError(0, "NETWORK", "We can't reach the server. Check your connection; we keep trying.");
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

const won = new Intl.NumberFormat("en-US");
export const formatWon = (n) => `₩${won.format(n)}`;

export function explain(error, context = {}) {
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again in a moment.";
  switch (error.code) {
    case "SEAT_UNAVAILABLE": return "Sorry, someone just took that seat. The map is up to date now: pick another.";
    case "HOLD_LIMIT": return "You already hold as many seats as one person may. Pay for them or release one first.";
    case "HOLD_EXPIRED": return "One of your seats was held too long and has been released. Pick it again if it is still free.";
    case "INSUFFICIENT_BALANCE": return `Your balance is too low for this payment${context.missing ? `: ${formatWon(context.missing)} more is needed` : ""}. Your seats are still held.`;
    case "BALANCE_LIMIT": return "That would put more in your wallet than it may hold. Add a smaller amount.";
    case "VALIDATION_FAILED": return `That doesn't look right: ${error.message}`;
    case "QUEUE_CLOSED": return "This concert isn't on sale right now.";
    case "TOKEN_EXPIRED": return "Your turn has ended: its time ran out. Join the queue again to continue.";
    case "TOKEN_WAITING": return "It isn't your turn yet. You're back in the queue view.";
    case "TOKEN_DONE": return "You have already completed a purchase with this place in line.";
    case "UNAUTHENTICATED": return "Your sign-in is no longer valid. Please sign in again.";
    case "FORBIDDEN": return "That belongs to someone else.";
    case "PROOF_OF_WORK_REQUIRED":
    case "PROOF_OF_WORK_INVALID": return "This browser's check did not go through. Press the button again.";
    case "NOT_FOUND": return "We couldn't find that. It may have ended or never existed.";
    case "TOO_MANY_REQUESTS": return "You're going a little fast." + wait;
    case "BACKEND_UNAVAILABLE": return "The service is very busy right now. Nothing was changed." + wait;
    case "NETWORK": return error.message;
    default: return `Something went wrong (${error.code}).` + wait;
  }
}
