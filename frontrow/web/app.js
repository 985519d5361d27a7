// The waiting-room page: sign in, queue, choose seats, pay. Plain modules, no build.
import { ApiError, call, explain, formatWon } from "./api.js";

const $ = (id) => document.getElementById(id);
const store = sessionStorage;
const state = {
  pollTimer: null, tickTimer: null, sessionEnds: null, dates: [], date: null,
  seats: [], holds: JSON.parse(store.getItem("holds") || "[]"),
};

// ---- small helpers -------------------------------------------------------

function show(view) {
  for (const el of document.querySelectorAll(".view")) el.hidden = el.id !== `view-${view}`;
  $("signout").hidden = !store.getItem("userToken");
  $("who").textContent = store.getItem("userId") ? `Signed in as ${store.getItem("userId")}` : "";
}

function notify(message, kind = "error") {
  const box = $("notice");
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = !message;
}

function clearNotice() { notify(""); }

function saveHolds() { store.setItem("holds", JSON.stringify(state.holds)); }

function stopTimers() {
  clearTimeout(state.pollTimer);
  clearInterval(state.tickTimer);
  state.pollTimer = state.tickTimer = null;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function leaveQueueState() {
  stopTimers();
  for (const key of ["queueToken", "concertId", "concertTitle", "firstRank", "payKey"]) store.removeItem(key);
  state.holds = [];
  saveHolds();
}

// Every failed call ends here: say what happened, and move to where it can be fixed.
async function handle(error) {
  if (!(error instanceof ApiError)) throw error;
  const missing = error.code === "INSUFFICIENT_BALANCE" ? totalHeld() - (state.balance || 0) : 0;
  notify(explain(error, { missing }));
  switch (error.code) {
    case "UNAUTHENTICATED":
      if (store.getItem("queueToken")) leaveQueueState();
      store.clear();
      return showSignin();
    case "TOKEN_EXPIRED": case "TOKEN_DONE":
      leaveQueueState();
      return showConcerts();
    case "TOKEN_WAITING":
      return poll();
    case "SEAT_UNAVAILABLE": case "HOLD_EXPIRED":
      return refreshBooking();
  }
}

// ---- sign in ---------------------------------------------------------------

function showSignin() {
  stopTimers();
  show("signin");
  $("demo-login").hidden = document.body.dataset.demoLogin !== "1";
}

$("demo-login").addEventListener("click", async () => {
  try {
    const { user_id, access_token } = await call("POST", "/auth/demo");
    signIn(user_id, access_token);
  } catch (e) { handle(e); }
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  let userId = "you";
  try { userId = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub; }
  catch { return notify("That doesn't look like a token. Paste the whole value you were given."); }
  signIn(userId, token);
});

function signIn(userId, token) {
  store.setItem("userId", userId);
  store.setItem("userToken", token);
  clearNotice();
  showConcerts();
}

$("signout").addEventListener("click", async () => {
  const queueToken = store.getItem("queueToken");
  if (queueToken) await call("DELETE", "/queue/token", { token: queueToken }).catch(() => {});
  leaveQueueState();
  store.clear();
  clearNotice();
  showSignin();
});

// ---- concerts --------------------------------------------------------------

async function showConcerts() {
  stopTimers();
  show("concerts");
  const list = $("concert-list");
  list.replaceChildren();
  let concerts;
  try { ({ concerts } = await call("GET", "/concerts")); } catch (e) { return handle(e); }
  if (!concerts.length) list.append(Object.assign(document.createElement("li"), { textContent: "No concerts on sale right now." }));
  for (const c of concerts) {
    const item = document.createElement("li");
    item.className = "card";
    const title = Object.assign(document.createElement("h2"), { textContent: c.title });
    const meta = Object.assign(document.createElement("p"), {
      className: "muted", textContent: `${c.venue} · ${c.dates} date${c.dates === 1 ? "" : "s"}`,
    });
    const join = Object.assign(document.createElement("button"), {
      className: "primary", textContent: c.open ? "Join the queue" : "Not on sale", disabled: !c.open,
    });
    join.addEventListener("click", () => joinQueue(c));
    item.append(title, meta, join);
    list.append(item);
  }
}

async function joinQueue(concert) {
  clearNotice();
  try {
    const place = await call("POST", `/concerts/${concert.concert_id}/queue`, { token: store.getItem("userToken") });
    store.setItem("queueToken", place.token);
    store.setItem("concertId", concert.concert_id);
    store.setItem("concertTitle", concert.title);
    store.setItem("firstRank", place.rank || 1);
    render(place);
  } catch (e) { handle(e); }
}

// ---- the queue -------------------------------------------------------------

async function poll() {
  clearTimeout(state.pollTimer);
  const token = store.getItem("queueToken");
  if (!token) return showConcerts();
  try {
    render(await call("GET", "/queue/token", { token }));
  } catch (e) {
    if (e.code === "UNAUTHENTICATED") return handle(e);
    notify(explain(e));
    state.pollTimer = setTimeout(poll, Math.max(2000, (e.retryAfter || 2) * 1000));
  }
}

function render(place) {
  if (place.status === "WAITING") return renderWaiting(place);
  if (place.status === "ACTIVE") return renderActive(place);
  leaveQueueState();
  notify(place.status === "DONE"
    ? "You have finished with this place in line. Join again to buy more."
    : "Your place in line has expired because this page stopped checking in. Join the queue again to continue.",
    place.status === "DONE" ? "info" : "error");
  showConcerts();
}

function renderWaiting(place) {
  show("queue");
  $("queue-title").textContent = `You are in the queue for ${store.getItem("concertTitle") || "this concert"}`;
  const first = Math.max(Number(store.getItem("firstRank")) || place.rank, place.rank);
  store.setItem("firstRank", first);
  $("q-rank").textContent = place.rank.toLocaleString("en-US");
  $("q-ahead").textContent = (place.rank - 1).toLocaleString("en-US");
  $("q-eta").textContent = place.eta_s === null ? "working it out…" : `about ${duration(place.eta_s)}`;
  const pct = first > 1 ? Math.round(((first - place.rank) / (first - 1)) * 100) : 100;
  $("q-progress").setAttribute("aria-valuenow", pct);
  $("q-progress-fill").style.width = `${pct}%`;
  $("q-status").textContent = `Updated ${new Date().toLocaleTimeString()}. Next update in ${duration(place.poll_after_ms / 1000)}.`;
  $("q-soldout").hidden = !place.sold_out;
  state.pollTimer = setTimeout(poll, place.poll_after_ms);
}

$("leave-queue").addEventListener("click", leaveQueue);
$("leave-session").addEventListener("click", leaveQueue);

async function leaveQueue() {
  try { await call("DELETE", "/queue/token", { token: store.getItem("queueToken") }); }
  catch (e) { if (e.code !== "UNAUTHENTICATED") return handle(e); }
  leaveQueueState();
  notify("You left the queue.", "info");
  showConcerts();
}

// ---- booking ---------------------------------------------------------------

function renderActive(place) {
  const entering = $("view-booking").hidden;
  show("booking");
  $("booking-title").textContent = `Choose your seats – ${store.getItem("concertTitle") || ""}`;
  touchSession(place.expires_at);
  if (entering) {
    $("main").focus();
    refreshBooking();
    refreshWallet();
  }
  clearInterval(state.tickTimer);
  state.tickTimer = setInterval(tick, 1000);
  tick();
  state.pollTimer = setTimeout(poll, place.poll_after_ms);
}

function touchSession(expiresAt) {
  if (expiresAt) state.sessionEnds = Date.parse(expiresAt);
}

function tick() {
  const left = (state.sessionEnds - Date.now()) / 1000;
  $("session-left").textContent = duration(left);
  if (left <= 0) return poll();
  const before = state.holds.length;
  state.holds = state.holds.filter((h) => Date.parse(h.expires_at) > Date.now());
  if (state.holds.length !== before) {
    saveHolds();
    notify("A seat you held was released because its 5 minutes ran out.");
    refreshBooking();
  }
  renderHolds();
}

// A booking call slides the session; the poll tells the new end precisely.
async function booking(method, path) {
  const result = await call(method, path, { token: store.getItem("queueToken") });
  state.sessionEnds = Math.max(state.sessionEnds || 0, Date.now() + 60_000);
  return result;
}

async function refreshBooking() {
  const concertId = store.getItem("concertId");
  try {
    ({ dates: state.dates } = await booking("GET", `/concerts/${concertId}/dates`));
  } catch (e) { return handle(e); }
  if (!state.date || !state.dates.some((d) => d.date === state.date)) {
    state.date = (state.dates.find((d) => !d.sold_out) || state.dates[0] || {}).date || null;
  }
  renderDates();
  await refreshSeats();
}

function renderDates() {
  const list = $("date-list");
  list.replaceChildren();
  for (const d of state.dates) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    const when = new Date(d.starts_at);
    button.textContent = `${when.toLocaleDateString("en-US", { weekday: "short", month: "short", day: "numeric" })} · ${d.sold_out ? "sold out" : `${d.available_seats} seats left`}`;
    button.setAttribute("aria-pressed", String(d.date === state.date));
    button.addEventListener("click", () => { state.date = d.date; renderDates(); refreshSeats(); });
    li.append(button);
    list.append(li);
  }
  if (!state.dates.length) list.append(Object.assign(document.createElement("li"), { textContent: "No upcoming dates." }));
}

async function refreshSeats() {
  if (!state.date) return $("seat-map").replaceChildren();
  try {
    ({ seats: state.seats } = await booking("GET", `/concerts/${store.getItem("concertId")}/dates/${state.date}/seats`));
  } catch (e) { return handle(e); }
  renderSeats();
}

function renderSeats() {
  const map = $("seat-map");
  const focused = document.activeElement && document.activeElement.dataset.seat;
  map.replaceChildren();
  const mine = new Set(state.holds.filter((h) => h.date === state.date).map((h) => h.seat_no));
  const prices = [...new Set(state.seats.map((s) => s.price))].sort((a, b) => b - a);
  $("map-title").textContent = `Seats on ${state.date}`;
  $("price-legend").textContent = prices.length ? `Prices: ${prices.map(formatWon).join(" · ")} (darker border = higher price)` : "";
  for (const seat of state.seats) {
    const status = mine.has(seat.seat_no) ? "mine" : seat.status.toLowerCase();
    const b = document.createElement("button");
    b.className = `seat ${status}${seat.price === prices[0] && prices.length > 1 ? " premium" : ""}`;
    b.textContent = seat.seat_no;
    b.dataset.seat = seat.seat_no;
    b.disabled = status === "sold" || status === "held";
    const words = { available: "available", held: "held by someone else", sold: "sold", mine: "held by you" }[status];
    b.setAttribute("aria-label", `Seat ${seat.seat_no}, ${formatWon(seat.price)}, ${words}`);
    b.title = `Seat ${seat.seat_no} · ${formatWon(seat.price)} · ${words}`;
    b.addEventListener("click", () => (status === "mine" ? release(state.holds.find((h) => h.date === state.date && h.seat_no === seat.seat_no)) : hold(seat)));
    map.append(b);
  }
  if (focused) map.querySelector(`[data-seat="${focused}"]`)?.focus();
}

async function hold(seat) {
  clearNotice();
  try {
    const h = await booking("POST", `/concerts/${store.getItem("concertId")}/dates/${state.date}/seats/${seat.seat_no}/hold`);
    state.holds = state.holds.filter((x) => x.hold_id !== h.hold_id).concat(h);
    saveHolds();
    notify(`Seat ${h.seat_no} is yours for 5 minutes. Pay before the timer runs out.`, "info");
  } catch (e) { return handle(e); }
  renderHolds();
  await refreshBooking();
}

async function release(h) {
  try { await booking("DELETE", `/holds/${h.hold_id}`); }
  catch (e) { if (e.code !== "NOT_FOUND") return handle(e); }
  state.holds = state.holds.filter((x) => x.hold_id !== h.hold_id);
  saveHolds();
  renderHolds();
  await refreshBooking();
}

function totalHeld() { return state.holds.reduce((sum, h) => sum + h.price, 0); }

function renderHolds() {
  const list = $("hold-list");
  list.replaceChildren();
  for (const h of state.holds) {
    const li = document.createElement("li");
    const left = (Date.parse(h.expires_at) - Date.now()) / 1000;
    const text = Object.assign(document.createElement("span"), {
      textContent: `${h.date} · seat ${h.seat_no} · ${formatWon(h.price)} · held for ${duration(left)}`,
    });
    const button = Object.assign(document.createElement("button"), { className: "link", textContent: "Release" });
    button.setAttribute("aria-label", `Release seat ${h.seat_no} on ${h.date}`);
    button.addEventListener("click", () => release(h));
    li.append(text, button);
    list.append(li);
  }
  if (!state.holds.length) list.append(Object.assign(document.createElement("li"), { className: "muted", textContent: "Pick a seat on the map." }));
  $("hold-total").textContent = state.holds.length ? `Total: ${formatWon(totalHeld())}` : "";
  $("pay").disabled = !state.holds.length;
  $("pay").textContent = state.holds.length ? `Pay ${formatWon(totalHeld())}` : "Pay";
}

// ---- wallet and payment ----------------------------------------------------

async function refreshWallet() {
  try {
    const { balance } = await call("GET", "/wallet", { token: store.getItem("userToken") });
    state.balance = balance;
    $("balance").textContent = formatWon(balance);
  } catch (e) { handle(e); }
}

$("charge-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const raw = $("charge-amount").value.trim();
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) return notify("Enter a whole number of won, like 100000.");
  try {
    const result = await call("POST", "/wallet/charge", {
      token: store.getItem("userToken"), body: { amount: Number(raw) },
      headers: { "Idempotency-Key": crypto.randomUUID() },
    });
    state.balance = result.balance;
    $("balance").textContent = formatWon(result.balance);
    $("charge-amount").value = "";
    notify(`Added ${formatWon(result.charged)} to your wallet.`, "info");
  } catch (e) { handle(e); }
});

$("pay").addEventListener("click", async () => {
  clearNotice();
  // One key per attempt, kept across a reload, so a retry never pays twice.
  const key = store.getItem("payKey") || crypto.randomUUID();
  store.setItem("payKey", key);
  $("pay").disabled = true;
  try {
    const receipt = await call("POST", "/payments", {
      token: store.getItem("queueToken"), body: { hold_ids: state.holds.map((h) => h.hold_id) },
      headers: { "Idempotency-Key": key },
    });
    leaveQueueState();
    showReceipt(receipt);
  } catch (e) {
    if (e.code !== "BACKEND_UNAVAILABLE" && e.code !== "NETWORK") store.removeItem("payKey");
    if (e.code === "HOLD_EXPIRED") { state.holds = []; saveHolds(); renderHolds(); }
    $("pay").disabled = !state.holds.length;
    handle(e);
  }
});

function showReceipt(r) {
  show("receipt");
  const box = $("receipt");
  box.replaceChildren();
  const rows = [
    ["Receipt", r.receipt_id], ["Paid", new Date(r.paid_at).toLocaleString()],
    ["Amount", formatWon(r.amount)], ["Balance left", formatWon(r.balance_after)],
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
      textContent: `${s.date} · seat ${s.seat_no} · ${formatWon(s.price)} · reservation #${s.reservation_id}`,
    }));
  }
  box.append(dl, seats);
  $("main").focus();
}

$("back-to-concerts").addEventListener("click", () => { clearNotice(); showConcerts(); });

// ---- start -----------------------------------------------------------------

if (!store.getItem("userToken")) showSignin();
else if (store.getItem("queueToken")) poll();
else showConcerts();
