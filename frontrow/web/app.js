// The waiting-room page: sign in, queue, choose seats, pay. Plain modules, no build.
import { ApiError, call, explain, formatWon, serverNow } from "./api.js";
import { formatNumber, lang, locale, parseWon, switchLanguage, t, translatePage, zoneName } from "./i18n.js";


const $ = (id) => document.getElementById(id);
translatePage();
$("lang").addEventListener("click", switchLanguage);
// localStorage, not sessionStorage: every tab of this browser shares one sign-in
// and one place in line, and learns from the others through "storage" events.
const store = localStorage;
const QUEUE_KEYS = ["queueToken", "concertId", "concertTitle", "concertVenue", "concertTz", "firstRank", "payKey", "prequeued"];
const TITLE = t("page.title");
const state = {
  pollTimer: null, tickTimer: null, sessionEnds: null, dates: [], date: null, holds: [],
  sections: [], section: null, rows: [], small: null,
  balance: null, tz: store.getItem("concertTz") || "UTC", cursor: null, pending: false,
  chargeKey: null, warnedTurn: false, warnedHold: null, trouble: null, announced: null,
  mapAt: 0,
};

// ---- small helpers -------------------------------------------------------

function show(view) {
  const changed = $(`view-${view}`).hidden;
  for (const el of document.querySelectorAll(".view")) el.hidden = el.id !== `view-${view}`;
  if (changed) window.scrollTo(0, 0);
  if (view !== "booking") document.title = TITLE;
  $("signout").hidden = !store.getItem("userToken");
  // who is signed in, without the raw id (a guest's is a long random string)
  $("who").textContent = store.getItem("userId") ? t("signedIn") : "";
}

// A page-level message, for what happened on the way to a new view (at its top).
function notify(message, kind = "error") {
  const box = $("notice");
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = !message;
}

// A message next to the action it answers. Errors interrupt a screen reader
// (alert), the rest waits its turn; info fades, errors stay until the next action.
function say(where, message, kind = "error", action = null) {
  const slot = $(`msg-${where}`);
  clearTimeout(slot.fade);
  slot.replaceChildren();
  if (!message) return;
  const p = Object.assign(document.createElement("p"), { className: `notice ${kind}`, textContent: message });
  if (kind === "error") p.setAttribute("role", "alert");
  if (action) p.append(" ", action);
  slot.append(p);
  if (!slot.classList.contains("toast")) p.scrollIntoView({ block: "nearest" });
  if (kind === "info") slot.fade = setTimeout(() => slot.replaceChildren(), 6000);
}

function clearMessages() {
  notify("");
  for (const slot of document.querySelectorAll(".msg")) say(slot.id.slice(4), "");
  state.trouble = null;
}

function announce(text) { $("announce").textContent = text; }

// Every button shows it is working, and a second press meanwhile does nothing.
async function busy(button, text, work) {
  if (button.getAttribute("aria-busy") === "true") return undefined;
  const label = button.textContent, disabled = button.disabled;
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  if (text) button.textContent = text;
  try { return await work(); } finally {
    button.removeAttribute("aria-busy");
    button.textContent = label;
    button.disabled = disabled;
  }
}

function confirmAction(text, yes) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yes;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}

function stopTimers() {
  clearTimeout(state.pollTimer);
  clearInterval(state.tickTimer);
  clearInterval(state.countdownTimer);
  clearInterval(state.statusTimer);
  clearTimeout(state.concertsTimer);
  state.pollTimer = state.tickTimer = state.countdownTimer = state.statusTimer = state.concertsTimer = null;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("unknown");
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return t("s", { n: seconds });
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return t("min", { m, s });
  return t("h", { h: Math.floor(m / 60), m: m % 60 });
}

const mmss = (seconds) => {
  seconds = Math.max(0, Math.floor(seconds));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
};

// Show dates and times in the venue's time zone, labelled with it (KST), so
// the buttons, the map, the sale times and the receipt name the same moment
// wherever the buyer is.
const inZone = (tz, at) => `${new Intl.DateTimeFormat(locale, {
  timeZone: tz, weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
}).format(at)} ${zoneName(tz, at)}`;
const showTime = (iso) => inZone(state.tz, new Date(iso));
const dayOnly = (date) => new Intl.DateTimeFormat(locale, { timeZone: "UTC", weekday: "short", month: "short", day: "numeric", year: "numeric" }).format(new Date(`${date}T12:00:00Z`));
const dateLabel = (date) => {
  const known = state.dates.find((d) => d.date === date);
  return known ? showTime(known.starts_at) : dayOnly(date);
};
// A moment in the buyer's own clock ("around 10:42"), from the server's time.
const clockTime = (epochMs) => new Date(epochMs - (serverNow() - Date.now())).toLocaleTimeString(locale, { hour: "numeric", minute: "2-digit" });
const seatName = (s) => t("seat", { label: s.label });

function leaveQueueState() {
  stopTimers();
  for (const key of QUEUE_KEYS) store.removeItem(key);
  Object.assign(state, { holds: [], date: null, warnedTurn: false, warnedHold: null, announced: null, small: null, section: null, sections: [], rows: [] });
}

function forgetEverything() {
  leaveQueueState();
  for (const key of ["userId", "userToken"]) store.removeItem(key);
}

// A failed call: say what happened next to `where`, and move to where it can be fixed.
async function handle(error, where = "map") {
  if (!(error instanceof ApiError)) throw error;
  switch (error.code) {
    case "UNAUTHENTICATED":
      forgetEverything();
      notify(explain(error));
      return showSignin();
    case "TOKEN_EXPIRED": case "TOKEN_DONE":
      leaveQueueState();
      notify(explain(error));
      return showConcerts();
    case "TOKEN_WAITING":
      notify(explain(error));
      return poll();
  }
  say(where, explain(error), "error");
  if (error.code === "SEAT_UNAVAILABLE" || error.code === "HOLD_EXPIRED") await refreshBooking();
}

// ---- sign in ---------------------------------------------------------------

function showSignin() {
  stopTimers();
  show("signin");
  $("demo-login").hidden = document.body.dataset.demoLogin !== "1";
}

$("demo-login").addEventListener("click", (event) => busy(event.currentTarget, t("busy.signin"), async () => {
  try {
    const { user_id, access_token } = await call("POST", "/auth/demo");
    signIn(user_id, access_token);
  } catch (e) { say("signin", explain(e)); }
}));

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  let userId;
  try { userId = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub; }
  catch { return say("signin", t("token.bad")); }
  signIn(userId, token);
});

function signIn(userId, token) {
  store.setItem("userId", userId);
  store.setItem("userToken", token);
  clearMessages();
  showConcerts();
}

$("signout").addEventListener("click", async () => {
  const queueToken = store.getItem("queueToken");
  if (queueToken && !(await confirmAction(t("signout.ask"), t("signout.yes")))) return;
  forgetEverything();  // first: a poll answering during the DELETE must not show the concerts
  await busy($("signout"), t("busy.signout"), async () => {
    if (queueToken) await call("DELETE", "/queue/token", { token: queueToken }).catch(() => {});
  });
  clearMessages();
  showSignin();
});

// ---- concerts --------------------------------------------------------------

async function showConcerts() {
  stopTimers();
  show("concerts");
  const list = $("concert-list");
  // on a slow line the list takes seconds: say so instead of a blank page
  list.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: t("loading.concerts") }));
  let concerts;
  try { ({ concerts } = await call("GET", "/concerts")); } catch (e) { list.replaceChildren(); return say("concerts", explain(e)); }
  list.replaceChildren();
  if (!concerts.length) list.append(Object.assign(document.createElement("li"), { textContent: t("concerts.none") }));
  const cards = [];
  for (const c of concerts) {
    const item = document.createElement("li");
    item.className = "card";
    const title = Object.assign(document.createElement("h2"), { textContent: c.title });
    const badge = Object.assign(document.createElement("span"), { className: "badge", textContent: t("badge.soldout") });
    title.append(" ", badge);
    const meta = Object.assign(document.createElement("p"), {
      className: "muted", textContent: t("concert.meta", { venue: c.venue, dates: c.dates }),
    });
    const note = Object.assign(document.createElement("p"), { className: "sale-note" });
    const join = Object.assign(document.createElement("button"), { className: "primary" });
    join.addEventListener("click", () => busy(join, t("busy.join"), () => joinQueue(c)));
    item.append(title, meta, note, join);
    list.append(item);
    cards.push({ c, badge, note, join });
  }
  // The cards change state by themselves: to the second at a pre-queue's
  // start or an opening (no reload), and a fresh list every minute (sold
  // out, paused), repainted in place so focus stays where it is.
  let fetched = Date.now();
  const paint = async () => {
    if (Date.now() - fetched >= 60_000) {
      fetched = Date.now();
      try {
        const fresh = new Map((await call("GET", "/concerts")).concerts.map((c) => [c.concert_id, c]));
        for (const card of cards) Object.assign(card.c, fresh.get(card.c.concert_id) || {});
      } catch { /* the list as it was; next minute again */ }
    }
    if ($("view-concerts").hidden) return;
    for (const { c, badge, note, join } of cards) {
      const sale = saleState(c);
      badge.hidden = !c.sold_out;
      note.textContent = sale.note || "";
      note.hidden = !sale.note;
      if (join.getAttribute("aria-busy") !== "true") {
        join.textContent = sale.button;
        join.disabled = Boolean(sale.closed);
      }
    }
    state.concertsTimer = setTimeout(paint, nextSaleChange(concerts));
  };
  paint();
}

// How long until a listed sale changes by the clock (a pre-queue starts, a
// sale opens), at most a minute.
function nextSaleChange(concerts) {
  const now = serverNow();
  const times = concerts.flatMap((c) => [c.prequeue_from, c.opens_at]).filter(Boolean)
    .map((t) => Date.parse(t) - now).filter((ms) => ms > 0);
  return Math.min(60_000, ...times.map((ms) => ms + 50));
}

// Where a concert's sale stands for the list: the button, and a line on the times.
function saleState(c) {
  if (c.sold_out) return { button: t("sale.soldout"), closed: true, note: t("sale.soldout.note") };
  if (!c.open) return { button: t("sale.closed"), closed: true };
  const now = serverNow();
  const opens = c.opens_at ? Date.parse(c.opens_at) : null;
  const pre = c.prequeue_from ? Date.parse(c.prequeue_from) : null;
  const when = (ms) => inZone(c.timezone || "UTC", new Date(ms));
  if (opens && now < opens) {
    const at = when(opens);
    if (pre && now >= pre) return { button: t("sale.prequeue"), note: t("sale.prequeue.note", { at }) };
    if (pre) return { button: t("sale.prequeueAt", { at: clockTime(pre) }), closed: true, note: t("sale.prequeueAt.note", { at, pre: when(pre) }) };
    return { button: t("sale.opensAt", { at: clockTime(opens) }), closed: true, note: t("sale.opensAt.note", { at }) };
  }
  return { button: t("sale.join") };
}

// Proof of work, when the concert asks for it: a few seconds of this
// device's time, in a worker. A search has no percentage (the answer may
// come early or late), so the page shows the time spent beside the usual
// time at this device's speed; a screen reader hears the start and the end.
async function proveWork(concert) {
  const token = store.getItem("userToken");
  const { challenge, bits } = await call("POST", `/concerts/${concert.concert_id}/queue/challenge`, { token });
  const expected = 2 ** bits, started = Date.now(), progress = $("pow-progress");
  let rate = 0;
  say("concerts", t("pow.start"), "info");
  const draw = () => {
    const usual = rate > 0 ? duration(expected / rate) : null;
    progress.textContent = t("pow.progress", { elapsed: duration((Date.now() - started) / 1000), usual });
  };
  progress.hidden = false;
  draw();
  const ticking = setInterval(draw, 1000);
  try {
    const nonce = await new Promise((resolve, reject) => {
      const worker = new Worker("/static/pow.js");
      worker.onmessage = ({ data }) => {
        if (data.nonce !== undefined) { worker.terminate(); return resolve(data.nonce); }
        rate = data.tried / Math.max(0.001, (Date.now() - started) / 1000);
      };
      worker.onerror = (e) => { worker.terminate(); reject(e); };
      worker.postMessage({ challenge, bits });
    });
    say("concerts", t("pow.done"), "info");
    return `${challenge}:${nonce}`;
  } finally {
    clearInterval(ticking);
    progress.hidden = true;
  }
}

// A press at the very second a pre-queue starts or a sale opens may reach the
// server a moment before that by its clock (this page knows it only to within
// about a second): such a refusal is asked again a few times within seconds
// (well inside the per-user limit), not shown.
async function enter(concert, headers) {
  for (let tries = 1; ; tries++) {
    try {
      return await call("POST", `/concerts/${concert.concert_id}/queue`, { token: store.getItem("userToken"), headers });
    } catch (e) {
      const starts = e.code === "QUEUE_CLOSED" && !e.data.sold_out ? Date.parse(e.data.prequeue_from || e.data.opens_at) : NaN;
      const early = starts - serverNow();
      if (!(tries <= 4 && Math.abs(early) < 3000)) throw e;
      await new Promise((resolve) => setTimeout(resolve, Math.max(early + 250, 300 * 2 ** (tries - 1))));
    }
  }
}

async function joinQueue(concert) {
  clearMessages();
  try {
    const headers = concert.pow_bits > 0 ? { "Proof-Of-Work": await proveWork(concert) } : {};
    const place = await enter(concert, headers);
    store.setItem("queueToken", place.token);
    store.setItem("concertId", concert.concert_id);
    store.setItem("concertTitle", concert.title);
    store.setItem("concertVenue", concert.venue);
    store.setItem("concertTz", concert.timezone || "UTC");
    state.tz = concert.timezone || "UTC";
    store.setItem("firstRank", place.rank || 1);
    render(place);
  } catch (e) {
    if (e.code === "UNAUTHENTICATED") return handle(e);
    if (e.code === "QUEUE_CLOSED" && e.data.opens_at && Date.parse(e.data.opens_at) > serverNow()) {
      const first = e.data.prequeue_from && Date.parse(e.data.prequeue_from) > serverNow() ? e.data.prequeue_from : e.data.opens_at;
      return say("concerts", t("queue.opensAt", { at: inZone(concert.timezone || "UTC", new Date(first)) }));
    }
    say("concerts", explain(e));
  }
}

// ---- the queue -------------------------------------------------------------

// A page never sleeps past a minute, whatever it was told (news it cannot
// foresee, a faster pace or a moved opening, reaches it within one), and
// checks at once when the buyer or the network comes back.
const MAX_WAIT_MS = 60_000;

function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  const wait = Math.min(ms, MAX_WAIT_MS);
  state.nextPollAt = Date.now() + wait;
  state.pollTimer = setTimeout(poll, wait);
}

function checkNow() {
  if (document.hidden || !store.getItem("queueToken")) return;
  if ($("view-queue").hidden && $("view-booking").hidden) return;
  if (Date.now() - (state.lastPollAt || 0) < 2000) return;  // just asked
  poll();
}
document.addEventListener("visibilitychange", checkNow);
window.addEventListener("focus", checkNow);
window.addEventListener("online", () => {
  state.lastPollAt = 0;
  checkNow();
  const retry = state.retry;
  state.retry = null;
  if (retry && !$("view-booking").hidden && retry.date === state.date && !state.pending) {
    state.pending = true;
    hold(retry.seat).finally(() => { state.pending = false; });
  }
});

// The line under the place, live: when the page asked and when it asks next.
function statusLine(text) {
  clearInterval(state.statusTimer);
  const asked = new Date().toLocaleTimeString();
  const draw = () => {
    const left = Math.max(0, Math.ceil((state.nextPollAt - Date.now()) / 1000));
    $("q-status").textContent = text(asked, left);
  };
  draw();
  state.statusTimer = setInterval(draw, 1000);
}

async function poll() {
  clearTimeout(state.pollTimer);
  state.lastPollAt = Date.now();
  const token = store.getItem("queueToken");
  if (!token) return showConcerts();
  let place;
  try {
    place = await call("GET", "/queue/token", { token });
  } catch (e) {
    if (store.getItem("queueToken") !== token) return;  // left or signed out meanwhile
    if (e.code === "UNAUTHENTICATED") return handle(e);
    state.trouble = $("view-booking").hidden ? "queue" : "map";
    say(state.trouble, explain(e));
    schedulePoll(Math.max(2000, (e.retryAfter || 2) * 1000));
    return;
  }
  if (store.getItem("queueToken") !== token) return;  // an answer about a place already given up
  if (state.trouble) { say(state.trouble, ""); state.trouble = null; }  // back online: the warning goes
  render(place);
}

function render(place) {
  if (place.status === "WAITING") return renderWaiting(place);
  if (place.status === "ACTIVE") return renderActive(place);
  leaveQueueState();
  notify(t(place.status === "DONE" ? "place.done" : "place.expired"), place.status === "DONE" ? "info" : "error");
  showConcerts();
}

function renderPrequeue(place) {
  show("queue");
  store.setItem("prequeued", "1");
  $("queue-title").textContent = t("queue.pre", { title: store.getItem("concertTitle") || t("thisConcert") });
  $("q-pre").hidden = false;
  $("q-facts").hidden = $("q-progress").hidden = true;
  const opens = Date.parse(place.opens_at);
  $("q-opens").textContent = inZone(state.tz, new Date(opens));
  $("q-lottery").href = `/static/lottery.html?concert=${store.getItem("concertId")}`;
  // Before the opening a countdown; from it, the draw under way with its
  // time running, until the next answer brings the place.
  const count = () => {
    const left = Math.round((opens - serverNow()) / 1000);
    $("q-count-lead").textContent = t(left > 0 ? "count.opens" : "count.drawing");
    $("q-countdown").textContent = duration(Math.abs(left));
  };
  clearInterval(state.countdownTimer);
  count();
  state.countdownTimer = setInterval(count, 1000);
  schedulePoll(place.poll_after_ms);
  statusLine((at, left) => t(serverNow() < opens ? "status.pre" : "status.drawing", { at, left: duration(left) }));
}

function renderWaiting(place) {
  if (place.prequeue) return renderPrequeue(place);
  show("queue");
  clearInterval(state.countdownTimer);
  $("q-pre").hidden = true;
  $("q-facts").hidden = $("q-progress").hidden = false;
  $("queue-title").textContent = t("queue.in", { title: store.getItem("concertTitle") || t("thisConcert") });
  if (store.getItem("prequeued") && place.rank !== null) {
    store.removeItem("prequeued");
    store.setItem("firstRank", place.rank);
    say("queue", t("draw.done"), "info");
  }
  if (place.rank === null) return renderUnranked(place);
  const first = Math.max(Number(store.getItem("firstRank")) || place.rank, place.rank);
  store.setItem("firstRank", first);
  $("q-rank").textContent = formatNumber(place.rank);
  $("q-ahead").textContent = formatNumber(place.rank - 1);
  $("q-random").hidden = true;
  $("q-eta").textContent = place.eta_s === null ? (place.sold_out ? "–" : t("eta.soon")) : t("eta.about", { d: duration(place.eta_s) });
  if (place.eta_s !== null) {
    $("q-eta").append(Object.assign(document.createElement("small"), { textContent: t("eta.around", { at: clockTime(serverNow() + place.eta_s * 1000) }) }));
  }
  const pct = first > 1 ? Math.round(((first - place.rank) / (first - 1)) * 100) : 100;
  $("q-progress").setAttribute("aria-valuenow", pct);
  $("q-progress-fill").style.width = `${pct}%`;
  $("q-soldout").hidden = !place.sold_out;
  announceRank(place);
  schedulePoll(place.poll_after_ms);
  statusLine((at, left) => t("status.wait", { at, left: duration(left) }));
}

// mode "random": everyone who waits has the same chance at each admission
function renderUnranked(place) {
  $("q-rank").textContent = t("random.rank");
  $("q-ahead").textContent = "–";
  $("q-random").hidden = false;
  $("q-random").textContent = t("random.explain");
  $("q-eta").textContent = place.eta_s === null ? "–" : t("eta.typical", { d: duration(place.eta_s) });
  $("q-progress").hidden = true;
  $("q-soldout").hidden = !place.sold_out;
  schedulePoll(place.poll_after_ms);
  statusLine((at, left) => t("status.wait", { at, left: duration(left) }));
}

// A line read out at every poll is noise: say the place when it first shows,
// then at most once a minute, and every step of the last ten.
function announceRank(place) {
  const now = Date.now(), last = state.announced;
  if (last && last.rank === place.rank) return;
  if (last && now - last.at < 60_000 && place.rank > 10) return;
  state.announced = { rank: place.rank, at: now };
  announce(t("announce.rank", { rank: formatNumber(place.rank), eta: place.eta_s === null ? "" : duration(place.eta_s) }));
}

const abandonS = Number(document.body.dataset.abandonS) || 0;
if (abandonS) {
  const away = abandonS % 60 ? duration(abandonS) : t("abandon.minutes", { m: abandonS / 60 });
  $("q-abandon").textContent = t("abandon", { away });
}

$("leave-queue").addEventListener("click", async () => {
  if (!(await confirmAction(t("leave.ask"), t("leave.yes")))) return;
  await busy($("leave-queue"), t("busy.leave"), () => leaveQueue("queue"));
});

$("leave-session").addEventListener("click", async () => {
  if (!(await confirmAction(t("giveup.ask", { n: state.holds.length }), t("giveup.yes")))) return;
  await busy($("leave-session"), t("busy.leave"), () => leaveQueue("pay"));
});

async function leaveQueue(where) {
  stopTimers();
  try { await call("DELETE", "/queue/token", { token: store.getItem("queueToken") }); }
  catch (e) {
    if (e.code !== "UNAUTHENTICATED") {
      schedulePoll(2000);  // still in line: keep the place alive
      return say(where, explain(e));
    }
  }
  leaveQueueState();
  clearMessages();
  notify(t("left"), "info");
  showConcerts();
}

// Admission alert: the title of a background tab, a sound and a notification if asked for.
function admitted() {
  document.title = t("turn.title");
  announce(t("turn.announce"));
  if ($("alert-sound").checked) beep();
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    new Notification(t("turn.notify"), { body: t("turn.notify.body") });
  }
}

function beep() {
  try {
    state.audio = state.audio || new AudioContext();
    const tone = state.audio.createOscillator(), gain = state.audio.createGain();
    tone.frequency.value = 880;
    gain.gain.value = 0.15;
    tone.connect(gain).connect(state.audio.destination);
    tone.start();
    tone.stop(state.audio.currentTime + 0.5);
  } catch { /* no audio here: the title and the notification still tell */ }
}

$("alert-sound").checked = store.getItem("alertSound") === "1";
$("alert-sound").addEventListener("change", (event) => {
  store.setItem("alertSound", event.target.checked ? "1" : "0");
  if (event.target.checked) { state.audio = state.audio || new AudioContext(); beep(); }  // a click may start audio
});

// The alert title stays until the buyer is back and acting on the page.
for (const type of ["pointerdown", "keydown"]) {
  document.addEventListener(type, () => { if (!document.hidden) document.title = TITLE; });
}

function renderNotifyState() {
  const supported = "Notification" in window;
  $("alert-notify").hidden = !supported || Notification.permission !== "default";
  $("alert-notify-state").textContent = !supported ? "" : Notification.permission === "granted"
    ? t("notify.granted") : Notification.permission === "denied" ? t("notify.denied") : "";
}
$("alert-notify").addEventListener("click", async () => { await Notification.requestPermission(); renderNotifyState(); });
renderNotifyState();

// ---- booking ---------------------------------------------------------------

function renderActive(place) {
  const entering = $("view-booking").hidden;
  if (!$("view-queue").hidden) admitted();
  show("booking");
  $("booking-title").textContent = t("booking.for", { title: store.getItem("concertTitle") || "" });
  state.sessionEnds = Date.parse(place.expires_at);
  clearInterval(state.statusTimer);
  clearInterval(state.countdownTimer);
  if (entering) {
    $("main").focus();
    $("date-list").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: t("loading.booking") }));
    $("seat-map").replaceChildren();
    refreshBooking();
    refreshWallet();
  }
  clearInterval(state.tickTimer);
  state.tickTimer = setInterval(tick, 1000);
  tick();
  schedulePoll(place.poll_after_ms);
}

// The turn's end is the server's answer, never a guess: after any booking
// call, which slides the turn, ask again at once.
function syncSoon() {
  clearTimeout(state.pollTimer);
  schedulePoll(250);
}

function tick() {
  const now = serverNow();
  const left = (state.sessionEnds - now) / 1000;
  $("session-left").textContent = duration(left);
  if (left <= 0) return poll();
  if (left <= 60 && !state.warnedTurn) {
    state.warnedTurn = true;
    say("map", t("turn.lastMinute"), "warn");
  } else if (left > 90) state.warnedTurn = false;
  const live = state.holds.filter((h) => Date.parse(h.expires_at) > now);
  if (live.length !== state.holds.length) {
    state.holds = live;
    say("map", t("hold.ranOut"));
    refreshBooking();
  }
  // The map keeps itself true while it is looked at (seats others take,
  // a date selling out), without anybody reloading.
  if (!document.hidden && !state.pending && Date.now() - state.mapAt > MAP_REFRESH_MS) refreshBooking();
  renderTimer(now);
}

function renderTimer(now) {
  const timer = $("cart-timer"), bar = $("cartbar");
  if (!state.holds.length) {
    timer.textContent = "";
    bar.hidden = true;
    return;
  }
  const first = Math.min(...state.holds.map((h) => Date.parse(h.expires_at)));
  const left = (first - now) / 1000;
  const late = left <= 60;
  timer.textContent = t("cart.left", { left: mmss(left) });
  timer.classList.toggle("late", late);
  bar.classList.toggle("late", late);
  bar.hidden = false;
  bar.textContent = t("cartbar", { n: state.holds.length, total: formatWon(totalHeld()), left: mmss(left) });
  if (late && state.warnedHold !== first) {
    state.warnedHold = first;
    say("map", t("hold.lastMinute"), "warn");
  }
}

async function booking(method, path, body) {
  const result = await call(method, path, { token: store.getItem("queueToken"), body });
  syncSoon();
  return result;
}

// Refreshes may overlap (a seat taken while the last one is still loading):
// only the newest one's answers are shown, so the cart never steps back.
const latest = { booking: 0, seats: 0 };

const MAP_REFRESH_MS = 15_000;

async function refreshBooking({ fromOtherTab = false } = {}) {
  state.mapAt = Date.now();
  const before = state.holds;
  const concertId = store.getItem("concertId");
  const turn = ++latest.booking;
  try {
    const [answer, mine] = await Promise.all([
      booking("GET", `/concerts/${concertId}/dates`), booking("GET", "/holds"),
    ]);
    if (turn !== latest.booking) return;
    state.dates = answer.dates;
    state.tz = answer.timezone || state.tz;
    store.setItem("concertTz", state.tz);
    state.holds = mine.holds;
    // Holds are the one thing a server fault may lose (a Redis that came back
    // empty): a live hold of ours that is gone, not released here or in
    // another tab, is said plainly, not dropped in silence.
    const kept = new Set(mine.holds.map((h) => h.hold_id));
    const lost = before.filter((h) => !kept.has(h.hold_id) && Date.parse(h.expires_at) > serverNow() + 2000);
    if (lost.length && !fromOtherTab) say("map", t("holds.lost", { n: lost.length }));
  } catch (e) { return handle(e); }
  if (!state.date || !state.dates.some((d) => d.date === state.date)) {
    state.date = (state.dates.find((d) => !d.sold_out) || state.dates[0] || {}).date || null;
  }
  renderDates();
  renderCart();
  await refreshSeats();
}

function renderDates() {
  const list = $("date-list");
  list.replaceChildren();
  for (const d of state.dates) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.textContent = `${showTime(d.starts_at)} · ${d.sold_out ? t("date.soldout") : t("date.left", { n: formatNumber(d.available_seats) })}`;
    button.setAttribute("aria-pressed", String(d.date === state.date));
    button.addEventListener("click", () => { state.date = d.date; state.cursor = null; state.section = null; renderDates(); busy(button, null, refreshSeats); });
    li.append(button);
    list.append(li);
  }
  if (!state.dates.length) list.append(Object.assign(document.createElement("li"), { textContent: t("dates.none") }));
}

// A venue this small shows every seat at once; a bigger one, its sections first.
const SMALL_VENUE = 600;

async function refreshSeats() {
  if (!state.date) return $("seat-map").replaceChildren();
  const base = `/concerts/${store.getItem("concertId")}/dates/${state.date}`;
  const seatsOf = (section) => booking("GET", `${base}/seats?form=rows${section ? `&section=${encodeURIComponent(section)}` : ""}`);
  const turn = ++latest.seats;
  try {
    // Once the venue's size is known, the overview and the seats come in parallel.
    const known = state.small || state.section;
    let [{ sections }, map] = await Promise.all([
      booking("GET", `${base}/sections`), known ? seatsOf(state.small ? null : state.section) : null,
    ]);
    state.sections = sections;
    const small = sections.reduce((n, s) => n + s.total_seats, 0) <= SMALL_VENUE;
    if (small && !state.small) map = await seatsOf(null);
    if (turn !== latest.seats) return;
    state.small = small;
    if (small || !sections.some((s) => s.name === state.section)) state.section = null;
    state.rows = map && (small || state.section) ? map.rows : [];
  } catch (e) { return handle(e); }
  renderSections();
  renderSeats();
}

// how much of a section is left: its colour in the list and the picture
const fullness = (s) => {
  const share = s.total_seats ? s.available_seats / s.total_seats : 0;
  return share === 0 ? "none" : share < 0.2 ? "few" : "many";
};
const sectionText = (s) => `${s.name} · ${s.available_seats ? t("section.left", { n: formatNumber(s.available_seats) }) : t("date.soldout")} · ${formatWon(s.min_price)}${s.max_price > s.min_price ? `–${formatWon(s.max_price)}` : ""}`;

function renderSections() {
  $("sections").hidden = state.small;
  $("sections").classList.toggle("chosen", Boolean(state.section));
  $("all-sections").hidden = state.small || !state.section;
  const list = $("section-list");
  list.replaceChildren();
  renderPlan();
  if (state.small) return;
  for (const s of state.sections) {
    const li = document.createElement("li");
    const button = Object.assign(document.createElement("button"), { className: `section ${fullness(s)}`, textContent: sectionText(s) });
    button.setAttribute("aria-pressed", String(s.name === state.section));
    button.addEventListener("click", () => busy(button, null, () => openSection(s.name)));
    li.append(button);
    list.append(li);
  }
}

// The sections placed as they lie in the venue (the catalog's `at`, percent
// of the picture, the stage above it), coloured by price and by what is left.
const TIERS = 4;
function renderPlan() {
  const plan = $("venue-plan");
  const placed = !state.small && state.sections.length > 0 && state.sections.every((s) => s.at);
  plan.hidden = !placed;
  plan.replaceChildren();
  if (!placed) return;
  const prices = [...new Set(state.sections.map((s) => s.min_price))].sort((a, b) => b - a);
  const tier = (price) => Math.min(prices.indexOf(price), TIERS - 1);
  const box = Object.assign(document.createElement("div"), { className: "plan-box" });
  for (const s of state.sections) {
    const [x, y, w, h] = s.at;
    const b = Object.assign(document.createElement("button"), {
      type: "button", tabIndex: -1, title: sectionText(s),
      className: `plan-section tier${tier(s.min_price)} ${fullness(s)}`,
    });
    Object.assign(b.style, { left: `${x}%`, top: `${y}%`, width: `${w}%`, height: `${h}%` });
    b.dataset.section = s.name;
    b.setAttribute("aria-pressed", String(s.name === state.section));
    b.append(
      Object.assign(document.createElement("strong"), { textContent: s.name }),
      Object.assign(document.createElement("small"), { textContent: s.available_seats ? formatNumber(s.available_seats) : t("date.soldout") }),
    );
    b.addEventListener("click", () => busy(b, null, () => openSection(s.name)));
    box.append(b);
  }
  const legend = Object.assign(document.createElement("p"), { className: "plan-legend" });
  // the last colour takes every cheaper price: it is "from" the cheapest of them
  const shown = prices.length > TIERS ? [...prices.slice(0, TIERS - 1), prices.at(-1)] : prices;
  for (const price of shown) {
    legend.append(Object.assign(document.createElement("span"), { className: `swatch tier${tier(price)}` }), ` ${t("from.price", { price: formatWon(price) })} `);
  }
  plan.append(Object.assign(document.createElement("div"), { className: "plan-stage", textContent: t("stage") }), box, legend);
}

async function openSection(name) {
  performance.mark("map-open");
  state.section = name;
  state.cursor = null;
  await refreshSeats();
  performance.measure("map-ready", "map-open");  // read by bench.page
  $("seat-map").querySelector('[tabindex="0"]')?.focus();
}

$("all-sections").addEventListener("click", () => { state.section = null; state.rows = []; renderSections(); renderSeats(); $("sections-title").focus?.(); });

const WORDS = { A: t("state.A"), H: t("state.H"), S: t("state.S"), mine: t("state.mine") };
const CLASSES = { A: "available", H: "held", S: "sold", mine: "mine" };

function renderSeats() {
  const map = $("seat-map");
  const focused = map.contains(document.activeElement) ? document.activeElement.dataset.seat : null;
  map.replaceChildren();
  const mine = new Set(state.holds.filter((h) => h.date === state.date).map((h) => h.seat_no));
  const prices = [...new Set(state.rows.flatMap((r) => r.prices.map(([, price]) => price)))].sort((a, b) => b - a);
  const date = state.dates.find((d) => d.date === state.date);
  $("map-title").textContent = t("map.title", { date: date ? showTime(date.starts_at) : dayOnly(state.date), section: state.section });
  $("price-legend").textContent = prices.length ? t("prices", { list: prices.map(formatWon).join(" · "), many: prices.length > 1 }) : "";
  if (!state.rows.length && !state.small) {
    map.append(Object.assign(document.createElement("p"), { className: "muted", textContent: t("map.pick") }));
  }
  let section = null;
  const fragment = document.createDocumentFragment();
  if (state.rows.length) fragment.append(Object.assign(document.createElement("div"), { className: "stage", textContent: t("stage") }));
  state.rows.forEach((row, r) => {
    if (row.section !== section && state.small) {
      section = row.section;
      fragment.append(Object.assign(document.createElement("h3"), { className: "section-name", textContent: t("section", { name: section }) }));
    }
    const line = document.createElement("div");
    line.className = "seat-row";
    line.setAttribute("role", "group");
    line.setAttribute("aria-label", t("row", { section: row.section, row: row.row }));
    line.append(Object.assign(document.createElement("span"), { className: "row-label", textContent: row.row, ariaHidden: "true" }));
    const rowPrices = row.prices.flatMap(([count, price]) => Array(count).fill(price));
    for (let i = 0; i < row.status.length; i++) {
      const seatNo = row.seat_no + i, price = rowPrices[i];
      const status = mine.has(seatNo) ? "mine" : row.status[i];
      const label = `${row.section}-${row.row}-${row.number + i}`;
      const b = document.createElement("button");
      b.type = "button";
      b.className = `seat ${CLASSES[status]}${price === prices[0] && prices.length > 1 ? " premium" : ""}`;
      b.textContent = row.number + i;
      b.dataset.seat = seatNo;
      b.dataset.r = r;
      b.dataset.i = i;
      b.tabIndex = -1;
      // Taken seats stay focusable (aria-disabled, not disabled), so keyboard
      // focus survives a map refresh that turns the focused seat grey.
      if (status === "S" || status === "H") b.setAttribute("aria-disabled", "true");
      b.setAttribute("aria-label", t("seat.label", { label, price: formatWon(price), state: WORDS[status] }));
      b.title = `${t("seat", { label })} · ${formatWon(price)} · ${WORDS[status]}`;
      line.append(b);
    }
    fragment.append(line);
  });
  map.append(fragment);
  const seats = [...map.querySelectorAll(".seat")];
  const cursor = seats.find((b) => b.dataset.seat === String(state.cursor))
    || seats.find((b) => !b.hasAttribute("aria-disabled")) || seats[0];
  if (cursor) cursor.tabIndex = 0;  // one tab stop for the whole map; arrows move inside
  if (focused) map.querySelector(`[data-seat="${focused}"]`)?.focus();
}

function moveCursor(button) {
  for (const b of $("seat-map").querySelectorAll('[tabindex="0"]')) b.tabIndex = -1;
  button.tabIndex = 0;
  state.cursor = Number(button.dataset.seat);
}

$("seat-map").addEventListener("keydown", (event) => {
  const here = document.activeElement;
  if (!here.classList.contains("seat")) return;
  const rows = [...$("seat-map").querySelectorAll(".seat-row")];
  const r = Number(here.dataset.r), i = Number(here.dataset.i);
  const inRow = (k) => [...rows[k].querySelectorAll(".seat")];
  const seats = inRow(r);
  let next;
  if (event.key === "ArrowRight") next = seats[i + 1] || (rows[r + 1] && inRow(r + 1)[0]);
  else if (event.key === "ArrowLeft") next = seats[i - 1] || (rows[r - 1] && inRow(r - 1).at(-1));
  else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const k = r + (event.key === "ArrowDown" ? 1 : -1);
    if (rows[k]) { const other = inRow(k); next = other[Math.min(i, other.length - 1)]; }
  } else if (event.key === "Home") next = seats[0];
  else if (event.key === "End") next = seats.at(-1);
  else return;
  event.preventDefault();
  if (!next) return;
  moveCursor(next);
  next.focus();
});

function seatAt(seatNo) {
  const row = state.rows.find((r) => seatNo >= r.seat_no && seatNo < r.seat_no + r.status.length);
  if (!row) return null;
  const i = seatNo - row.seat_no;
  const price = row.prices.flatMap(([count, p]) => Array(count).fill(p))[i];
  return { seat_no: seatNo, price, status: row.status[i], label: `${row.section}-${row.row}-${row.number + i}` };
}

$("seat-map").addEventListener("click", async (event) => {
  const b = event.target.closest(".seat");
  if (!b || state.pending) return;  // one seat action at a time
  moveCursor(b);
  const seat = seatAt(Number(b.dataset.seat));
  if (b.hasAttribute("aria-disabled")) {
    return say("map", t("seat.taken", { seat: seatName(seat), state: WORDS[seat.status === "S" ? "S" : "H"] }), "info");
  }
  clearMessages();
  state.pending = true;
  b.setAttribute("aria-busy", "true");
  try {
    const mine = state.holds.find((h) => h.date === state.date && h.seat_no === seat.seat_no);
    await (mine ? release(mine, "map") : hold(seat));
  } finally { state.pending = false; }
});

$("best-form").addEventListener("submit", (event) => {
  event.preventDefault();
  return busy($("best"), t("busy.best"), async () => {
    clearMessages();
    const body = { count: Number($("best-count").value) };
    if (state.section) body.section = state.section;
    try {
      const { holds } = await booking("POST", `/concerts/${store.getItem("concertId")}/dates/${state.date}/best-available`, body);
      state.holds = state.holds.concat(holds);
      const at = clockTime(Date.parse(holds[0].expires_at));
      say("map", holds.length === 1 ? t("held.one", { seat: seatName(holds[0]), at }) : t("held.many", { names: holds.map((h) => h.label).join(", "), at }), "info");
      tellOtherTabs();
      if (!state.small && holds[0].section !== state.section) state.section = holds[0].section;
      state.cursor = holds[0].seat_no;
    } catch (e) {
      if (e.code === "SEAT_UNAVAILABLE") return say("map", t("best.none", { n: body.count, section: state.section }));
      return handle(e);
    }
    renderCart();
    await refreshBooking();
    // the block it found, in sight (a stadium row is wider than the screen)
    $("seat-map").querySelector(`[data-seat="${state.cursor}"]`)?.scrollIntoView({ block: "center", inline: "center" });
  });
});

async function hold(seat) {
  const date = state.date;
  try {
    const h = await booking("POST", `/concerts/${store.getItem("concertId")}/dates/${date}/seats/${seat.seat_no}/hold`);
    state.holds = state.holds.filter((x) => x.hold_id !== h.hold_id).concat(h);
    say("map", t("held.one", { seat: seatName(h), at: clockTime(Date.parse(h.expires_at)) }), "info");
    tellOtherTabs();
  } catch (e) {
    // offline: the seat is asked for again as soon as the connection is back
    if (e.code === "NETWORK") { state.retry = { seat, date }; return say("map", t("seat.offline", { seat: seatName(seat) })); }
    return handle(e);
  }
  renderCart();
  refreshBooking();  // not awaited: the next seat can be picked while the map reloads
}

async function release(h, where) {
  try { await booking("DELETE", `/holds/${h.hold_id}`); }
  catch (e) { if (e.code !== "NOT_FOUND") return handle(e, where); }
  state.holds = state.holds.filter((x) => x.hold_id !== h.hold_id);
  say(where, t("released", { seat: seatName(h), date: dateLabel(h.date) }), "info");
  tellOtherTabs();
  renderCart();
  refreshBooking();
}

function tellOtherTabs() { store.setItem("holdsChanged", String(Date.now())); }

function totalHeld() { return state.holds.reduce((sum, h) => sum + h.price, 0); }

// The cart is the order summary: what, when, how much, and what is left after.
function renderCart() {
  const list = $("hold-list");
  list.replaceChildren();
  for (const h of state.holds) {
    const li = document.createElement("li");
    const text = Object.assign(document.createElement("span"), {
      textContent: `${dateLabel(h.date)} · ${seatName(h)} · ${formatWon(h.price)}`,
    });
    const button = Object.assign(document.createElement("button"), { className: "link", textContent: t("release") });
    button.setAttribute("aria-label", t("release.label", { seat: seatName(h), date: dateLabel(h.date) }));
    button.addEventListener("click", () => busy(button, t("busy.release"), () => { clearMessages(); return release(h, "pay"); }));
    li.append(text, button);
    list.append(li);
  }
  if (!state.holds.length) list.append(Object.assign(document.createElement("li"), { className: "muted", textContent: t("cart.empty") }));
  const summary = $("summary");
  summary.replaceChildren();
  if (state.holds.length) {
    const total = totalHeld();
    const rows = [[t("sum.total"), formatWon(total)]];
    if (state.balance !== null) {
      rows.push([t("sum.wallet"), formatWon(state.balance)]);
      rows.push(state.balance >= total ? [t("sum.after"), formatWon(state.balance - total)] : [t("sum.needed"), formatWon(total - state.balance)]);
    }
    for (const [k, v] of rows) {
      const div = document.createElement("div");
      div.append(Object.assign(document.createElement("dt"), { textContent: k }), Object.assign(document.createElement("dd"), { textContent: v }));
      summary.append(div);
    }
  }
  if ($("pay").getAttribute("aria-busy") !== "true") {
    $("pay").disabled = !state.holds.length;
    $("pay").textContent = state.holds.length ? t("pay.total", { total: formatWon(totalHeld()) }) : t("pay");
  }
  renderTimer(serverNow());
}

// ---- wallet and payment ----------------------------------------------------

function setBalance(balance) {
  state.balance = balance;
  $("balance").textContent = formatWon(balance);
  renderCart();
}

async function refreshWallet() {
  try {
    setBalance((await call("GET", "/wallet", { token: store.getItem("userToken") })).balance);
  } catch (e) { handle(e, "charge"); }
}

const answerUnknown = (e) => e.code === "NETWORK" || e.status >= 500;

// One Idempotency-Key per amount meant, kept until it is answered: a second
// press, or a retry after a lost answer, can never add the money twice.
async function addMoney(amount) {
  if (!state.chargeKey || state.chargeKey.amount !== amount) state.chargeKey = { amount, key: crypto.randomUUID() };
  const result = await call("POST", "/wallet/charge", {
    token: store.getItem("userToken"), body: { amount },
    headers: { "Idempotency-Key": state.chargeKey.key },
  });
  state.chargeKey = null;
  setBalance(result.balance);
  return result;
}

$("charge-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = parseWon($("charge-amount").value);
  if (amount === null) return say("charge", t("charge.bad"));
  return busy($("charge"), t("busy.charge"), async () => {
    clearMessages();
    try {
      const result = await addMoney(amount);
      $("charge-amount").value = "";
      say("charge", t("charged", { amount: formatWon(result.charged) }), "info");
    } catch (e) {
      if (!answerUnknown(e)) state.chargeKey = null;
      handle(e, "charge");
    }
  });
});

$("pay").addEventListener("click", () => busy($("pay"), t("busy.pay"), pay).then(renderCart));

async function pay() {
  clearMessages();
  // One key per attempt, kept across a reload, so a retry never pays twice.
  const key = store.getItem("payKey") || crypto.randomUUID();
  store.setItem("payKey", key);
  try {
    const receipt = await call("POST", "/payments", {
      token: store.getItem("queueToken"), body: { hold_ids: state.holds.map((h) => h.hold_id) },
      headers: { "Idempotency-Key": key },
    });
    const title = store.getItem("concertTitle"), venue = store.getItem("concertVenue");
    store.setItem("paidAt", String(Date.now()));  // the other tabs learn why this place ends
    leaveQueueState();
    tellOtherTabs();
    showReceipt(receipt, title, venue);
  } catch (e) {
    // The answer to a 5xx or a lost connection is unknown: the money may have
    // moved, so the retry keeps the key (and gets the first receipt).
    if (!answerUnknown(e)) store.removeItem("payKey");
    if (e.code === "INSUFFICIENT_BALANCE") return offerTopUp(e);
    handle(e, "pay");
  }
}

// "Add ₩40,000 and pay": the shortest way out of a too-low balance.
async function offerTopUp(error) {
  await refreshWallet();
  const missing = totalHeld() - (state.balance || 0);
  if (missing <= 0) {  // the wallet was topped up meanwhile (another tab): let the buyer press Pay again
    return say("pay", t("pay.enough"), "info");
  }
  const button = Object.assign(document.createElement("button"), { className: "primary", textContent: t("topup", { amount: formatWon(missing) }) });
  button.addEventListener("click", () => busy(button, t("busy.pay"), async () => {
    clearMessages();
    try { await addMoney(missing); } catch (e) { return handle(e, "pay"); }
    await pay();
  }));
  say("pay", t("pay.short", { amount: formatWon(missing) }), "error", button);
  if (error.status === 402) button.focus();
}

function showReceipt(r, title, venue) {
  show("receipt");
  const box = $("receipt");
  box.replaceChildren();
  const rows = [
    [t("r.concert"), title || `#${r.concert_id}`], ...(venue ? [[t("r.venue"), venue]] : []),
    [t("r.receipt"), r.receipt_id],
    [t("r.paid"), showTime(r.paid_at)],
    [t("r.amount"), formatWon(r.amount)], [t("r.balance"), formatWon(r.balance_after)],
  ];
  const dl = document.createElement("dl");
  for (const [k, v] of rows) {
    const div = document.createElement("div");
    div.append(Object.assign(document.createElement("dt"), { textContent: k }),
      Object.assign(document.createElement("dd"), { textContent: v }));
    dl.append(div);
  }
  const seats = document.createElement("ul");
  for (const s of r.seats) {
    seats.append(Object.assign(document.createElement("li"), {
      textContent: t("r.seat", { date: dateLabel(s.date), seat: seatName(s), price: formatWon(s.price), id: s.reservation_id }),
    }));
  }
  box.append(dl, seats);
  $("main").focus();
}

$("back-to-concerts").addEventListener("click", () => { clearMessages(); showConcerts(); });

// ---- my tickets ------------------------------------------------------------

// Every receipt of this buyer (GET /receipts), so a booking outlives the tab
// and the reload that ends its receipt view.
async function showTickets() {
  stopTimers();
  show("tickets");
  const list = $("ticket-list");
  list.replaceChildren();
  let receipts, concerts;
  try {
    const token = store.getItem("userToken");
    [{ receipts }, { concerts }] = await Promise.all([call("GET", "/receipts", { token }), call("GET", "/concerts")]);
  } catch (e) { return handle(e, "tickets"); }
  const byId = new Map(concerts.map((c) => [c.concert_id, c]));
  if (!receipts.length) list.append(Object.assign(document.createElement("li"), { className: "muted", textContent: t("tickets.none") }));
  for (const r of receipts) {
    const c = byId.get(r.concert_id);
    const item = Object.assign(document.createElement("li"), { className: "card" });
    item.append(
      Object.assign(document.createElement("h2"), { textContent: c ? c.title : `#${r.concert_id}` }),
      Object.assign(document.createElement("p"), { className: "muted", textContent: c ? c.venue : "" }),
    );
    const seats = document.createElement("ul");
    for (const s of r.seats) {
      seats.append(Object.assign(document.createElement("li"), {
        textContent: t("tickets.seat", { date: dayOnly(s.date), seat: seatName(s), price: formatWon(s.price) }),
      }));
    }
    const paid = inZone(c?.timezone || "UTC", new Date(r.paid_at));
    item.append(seats, Object.assign(document.createElement("p"), {
      className: "muted", textContent: t("tickets.paid", { amount: formatWon(r.amount), at: paid, id: r.receipt_id }),
    }));
    list.append(item);
  }
  $("main").focus();
}

for (const id of ["my-tickets", "receipt-tickets"]) $(id).addEventListener("click", () => { clearMessages(); showTickets(); });
$("tickets-back").addEventListener("click", () => { clearMessages(); showConcerts(); });

// ---- other tabs ------------------------------------------------------------

window.addEventListener("storage", (event) => {
  if (event.key === "userToken" && !event.newValue) return showSignin();
  if (event.key === "queueToken") {
    if (event.newValue) return poll();
    // the place ended in another tab: say so when it ended in a payment there
    const paid = Date.now() - Number(store.getItem("paidAt") || 0) < 10_000;
    showConcerts();
    if (paid) notify(t("otherTab.paid"), "info");
    return undefined;
  }
  if (event.key === "holdsChanged" && !$("view-booking").hidden) refreshBooking({ fromOtherTab: true });
});

// ---- start -----------------------------------------------------------------

if (!store.getItem("userToken")) showSignin();
else if (store.getItem("queueToken")) poll();
else showConcerts();
