// The operations console: one concert's last 15 minutes, refreshed every
// 2 s from GET /admin/concerts/{id}/live, its controls (PATCH .../queue)
// and the audit of changes (GET .../audit). Charts are plain SVG.
import { call } from "./api.js";

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;  // the token lives as long as this tab
const REFRESH_MS = 2000;
const AUDIT_EVERY = 5;  // refreshes between two reads of the audit list
const WINDOW_MS = 15 * 60 * 1000;
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#3b2bd6", "#1e7a3e", "#a15c00", "#b3261e", "#0b7285", "#6b4ea8"];
const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

const CHARTS = [
  ["waiting", "Waiting", (s) => ({ waiting: s.waiting })],
  ["active", "Active", (s) => ({ active: s.active })],
  ["admitted", "Arrivals and admissions per minute", (s) => ({ arrived: s.arrivals_per_min, admitted: s.admitted_per_min })],
  ["abandoned", "Abandoned per minute", (s) => ({ abandoned: s.abandoned_per_min })],
  ["eta", "Wait of the last in line (min)", (s) => ({ minutes: s.eta_last_s.map((v) => (v == null ? null : v / 60)) })],
  ["sales", "Holds and sales per minute (seats)", (s) => ({ holds: s.holds_per_min, sales: s.sales_per_min })],
  ["soldout", "Sold out in, at the last minute's rate of sale (min)", (s) => ({ minutes: s.sold_out_in_min })],
  ["notback", "Admitted, not back yet", (s) => ({ "not back": s.not_back })],
  ["errors", "Error answers per minute (this concert)", (s) => ({
    "4xx": s.answers_4xx_per_min, "429s": s.answers_429_per_min, "5xx": s.answers_5xx_per_min,
  })],
  ["latency", "p99 of this concert's requests (ms)", (s) => ({ poll: s.poll_p99_ms, payment: s.payment_p99_ms })],
];

// Where an alert of deploy/prometheus/alerts.yml would fire, drawn on its chart.
const THRESHOLDS = {
  latency: { value: 250, label: "FrontrowPollSlow: poll p99 over 250 ms for 5 min" },
};

const state = { concertId: null, timer: null, refreshes: 0, settings: null, concerts: [], changes: [] };

function token() { return store.getItem("adminToken"); }

async function admin(method, path, body) {
  return call(method, `/admin/concerts/${state.concertId}${path}`, { token: token(), body });
}

function say(text, kind = "error") {
  const box = $("notice");
  box.textContent = text;
  box.className = `notice ${kind}`;
  box.hidden = !text;
}

function show(view) {
  $("view-signin").hidden = view !== "signin";
  $("view-console").hidden = view !== "console";
  $("signout").hidden = $("concert-pick").hidden = view !== "console";
}

// ---- sign-in -----------------------------------------------------------------

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  store.setItem("adminToken", $("admin-token").value.trim());
  $("admin-token").value = "";
  await start();
});

$("signout").addEventListener("click", () => {
  clearTimeout(state.timer);
  store.removeItem("adminToken");
  say("");
  show("signin");
});

async function start() {
  let concerts;
  try { ({ concerts } = await call("GET", "/concerts")); } catch (e) { return say(e.message); }
  if (!concerts.length) return say("There is no concert in the catalog.");
  state.concerts = concerts;
  const pick = $("concert");
  pick.replaceChildren(...concerts.map((c) => new Option(`${c.concert_id} · ${c.title}`, c.concert_id)));
  const wanted = Number(store.getItem("concertId"));
  state.concertId = concerts.some((c) => c.concert_id === wanted) ? wanted : concerts[0].concert_id;
  pick.value = String(state.concertId);
  try {
    await admin("GET", "/queue");
  } catch (e) {
    store.removeItem("adminToken");
    show("signin");
    return say(e.status === 401 ? "That token is not the admin token." : e.message);
  }
  say("");
  show("console");
  buildCharts();
  await refresh(true);
}

$("concert").addEventListener("change", async () => {
  state.concertId = Number($("concert").value);
  store.setItem("concertId", String(state.concertId));
  state.settings = null;
  await refresh(true);
});

// ---- live numbers ------------------------------------------------------------------

async function refresh(withAudit = false) {
  clearTimeout(state.timer);
  if (!token()) return;  // signed out meanwhile
  try {
    const live = await admin("GET", "/live");
    if (withAudit || ++state.refreshes % AUDIT_EVERY === 0) renderAudit(await admin("GET", "/audit"));
    render(live);  // after the audit: its changes are marked on the charts
    $("updated").textContent = `updated ${clock(Date.now())} ${venueZone()}`;
    if (!$("notice").classList.contains("info")) say("");
  } catch (e) {
    if (e.status === 401) { store.removeItem("adminToken"); show("signin"); return say("Signed out: the token was refused."); }
    say(`Could not refresh: ${e.message}. Retrying.`);
  }
  clearTimeout(state.timer);  // a refresh started meanwhile (a change, another concert) set one too
  if (token()) state.timer = setTimeout(refresh, REFRESH_MS);
}

// What the sale is now (the server's `state`), in the words an operator
// steers by, its times in the venue's zone.
function saleLine(s) {
  const tz = state.concerts.find((c) => c.concert_id === state.concertId)?.timezone || "UTC";
  const at = (iso) => `${new Intl.DateTimeFormat("en-US", {
    timeZone: tz, weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  }).format(new Date(iso))} (${tz})`;
  const until = (iso) => span((Date.parse(iso) - Date.now()) / 1000);
  switch (s.state) {
    case "sold_out": return ["sold out", "every date to come is sold"];
    case "closed": return ["closed", s.mode === "reject" ? "mode reject: nobody new can enter" : "nobody new can enter"];
    case "scheduled": return [`scheduled · opens in ${until(s.opens_at)}`,
      s.prequeue_from ? `pre-queue from ${at(s.prequeue_from)}, opens ${at(s.opens_at)}` : `opens ${at(s.opens_at)}`];
    case "prequeue": return [`pre-queue · ${number.format(s.waiting)} in · opens in ${until(s.opens_at)}`, `opens ${at(s.opens_at)}; places drawn then`];
    case "opening": return ["opening · drawing places", `opened ${at(s.opens_at)}`];
    case "paused": return ["paused · k = 0", "nobody waiting is let in"];
    default: return [`open · ${s.mode}`, s.opened_at ? `opened ${at(s.opened_at)}` : ""];
  }
}

function span(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${seconds % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function last(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return values[i];
  return null;
}

function render(live) {
  const s = live.settings;
  $("console-title").textContent = $("concert").selectedOptions[0]?.textContent || `Concert ${live.concert_id}`;
  const [sale, note] = saleLine(s);
  $("t-open").textContent = sale;
  $("t-sale-note").textContent = note;
  $("t-waiting").textContent = number.format(s.waiting);
  $("t-active").textContent = number.format(s.active);
  const notBack = last(live.series.not_back || []);
  $("t-not-back").textContent = notBack == null ? "–" : number.format(notBack);
  $("t-rate").textContent = `${number.format(s.admit_rate_per_s)}/s`;
  $("t-eta").textContent = duration(s.waiting, s.admit_rate_per_s);
  $("t-kn").textContent = `${s.admit_target_p99_ms ? "auto " : ""}${s.admit_batch} / ${s.admit_interval_s} s`;
  $("toggle-open").textContent = s.open ? "Close the queue" : "Open the queue";
  $("toggle-open").classList.toggle("danger", s.open);
  for (const zone of document.querySelectorAll(".zone")) zone.textContent = venueZone();
  fillControls(s);
  const t = live.series.t;
  for (const [id, , pick] of CHARTS) drawChart(id, t, pick(live.series));
  const rows = live.dates.map((d) => {
    const tr = document.createElement("tr");
    for (const v of [d.date, number.format(d.seats), d.left == null ? "–" : number.format(d.left), number.format(d.held)]) {
      tr.append(Object.assign(document.createElement("td"), { textContent: v }));
    }
    return tr;
  });
  $("dates").tBodies[0].replaceChildren(...rows);
}

function duration(waiting, rate) {
  if (!waiting) return "nobody waiting";
  if (!rate) return "stalled";
  const s = Math.ceil(waiting / rate);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ---- charts --------------------------------------------------------------------------

const W = 320, H = 130, PAD = { l: 44, r: 6, t: 8, b: 18 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function buildCharts() {
  $("charts").replaceChildren(...CHARTS.map(([id, title]) => {
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.id = `chart-${id}`;
    const caption = document.createElement("figcaption");
    caption.append(Object.assign(document.createElement("span"), { textContent: title }),
      Object.assign(document.createElement("span"), { className: "now" }));
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    figure.append(caption, svg, Object.assign(document.createElement("div"), { className: "legend" }),
      Object.assign(document.createElement("p"), { className: "hover muted" }));
    return figure;
  }));
}

function drawChart(id, t, lines) {
  const figure = $(`chart-${id}`);
  const svg = figure.querySelector("svg");
  const names = Object.keys(lines);
  const now = t.length ? t[t.length - 1] : Date.now();
  const x0 = now - WINDOW_MS;
  const values = names.flatMap((n) => lines[n].filter((v) => v != null));
  const threshold = THRESHOLDS[id];
  const top = niceMax(Math.max(1, ...values, threshold ? threshold.value * 1.2 : 0));
  const x = (ms) => PAD.l + ((ms - x0) / WINDOW_MS) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / top) * (H - PAD.t - PAD.b);
  const parts = [
    el("line", { x1: PAD.l, x2: W - PAD.r, y1: y(0), y2: y(0), class: "axis" }),
    el("line", { x1: PAD.l, x2: W - PAD.r, y1: y(top), y2: y(top), class: "gridline" }),
    el("text", { x: PAD.l - 4, y: y(top) + 4, class: "tick end" }, compact(top)),
    el("text", { x: PAD.l - 4, y: y(0), class: "tick end" }, "0"),
    el("text", { x: PAD.l, y: H - 4, class: "tick" }, "−15 min"),
    el("text", { x: W - PAD.r, y: H - 4, class: "tick end" }, "now"),
  ];
  // a time axis: every 5 minutes, with the clock time
  for (const back of [10, 5]) {
    const at = now - back * 60_000;
    parts.push(el("line", { x1: x(at), x2: x(at), y1: PAD.t, y2: y(0), class: "gridline" }),
      el("text", { x: x(at), y: H - 4, class: "tick middle" }, clock(at)));
  }
  if (threshold) {
    const mark = el("g", { class: "threshold" });
    mark.append(el("title", {}, threshold.label),
      el("line", { x1: PAD.l, x2: W - PAD.r, y1: y(threshold.value), y2: y(threshold.value) }));
    parts.push(mark);
  }
  // a mark where a setting changed, and what changed (from the audit)
  for (const c of state.changes) {
    const at = Date.parse(c.at);
    if (at < x0 || at > now) continue;
    const mark = el("g", { class: "change" });
    mark.append(el("title", {}, `${clock(at)} ${c.field}: ${plain(c.old)} → ${plain(c.new)}${c.operator ? ` (${c.operator})` : ""}`),
      el("line", { x1: x(at), x2: x(at), y1: PAD.t, y2: y(0) }));
    parts.push(mark);
  }
  names.forEach((name, i) => {
    // a gap in the data (None: unknown) breaks the line instead of drawing zero
    let path = "", pen = "M";
    lines[name].forEach((v, j) => {
      if (v == null || t[j] < x0) { pen = "M"; return; }
      path += `${pen}${x(t[j]).toFixed(1)},${y(v).toFixed(1)}`;
      pen = "L";
    });
    parts.push(el("path", { d: path || "M0,0", class: "series", stroke: COLOURS[i % COLOURS.length] }));
  });
  svg.replaceChildren(...parts);
  // the values of the moment under the pointer
  svg.onpointermove = (event) => {
    if (!t.length) return;
    const box = svg.getBoundingClientRect();
    const ms = x0 + (((event.clientX - box.left) / box.width) * W - PAD.l) / (W - PAD.l - PAD.r) * WINDOW_MS;
    let j = 0;
    while (j < t.length - 1 && Math.abs(t[j + 1] - ms) <= Math.abs(t[j] - ms)) j++;
    const said = names.map((n) => `${names.length > 1 ? `${n} ` : ""}${lines[n][j] == null ? "–" : number.format(lines[n][j])}`);
    figure.querySelector(".hover").textContent = `${clock(t[j])} · ${said.join(" · ")}`;
  };
  svg.onpointerleave = () => { figure.querySelector(".hover").textContent = ""; };
  const latest = names.map((n) => `${names.length > 1 ? `${n} ` : ""}${last(lines[n]) == null ? "–" : number.format(last(lines[n]))}`);
  figure.querySelector(".now").textContent = latest.join(" · ");
  const legend = figure.querySelector(".legend");
  legend.hidden = names.length < 2;
  legend.replaceChildren(...names.map((n, i) => {
    const item = Object.assign(document.createElement("span"), { textContent: n });
    item.style.setProperty("--swatch", COLOURS[i % COLOURS.length]);
    return item;
  }));
}

// One clock on the whole console, the venue's (its zone named where a time
// stands alone): the audit, the charts and "updated" agree with the sale's
// times, whatever the operator's own machine is set to.
function clock(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", {
    timeZone: venueZone(), hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function when(ms) {
  const day = new Date(ms).toLocaleDateString("en-CA", { timeZone: venueZone() });  // 2026-12-24
  return `${day} ${clock(ms)}`;
}

function niceMax(v) {
  const step = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * step).find((m) => m >= v);
}

function compact(v) {
  return v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v);
}

// ---- controls ---------------------------------------------------------------------

const FIELDS = ["admit_batch", "admit_interval_s", "max_active", "admit_target_p99_ms", "mode", "prequeue_from", "opens_at", "pow_bits"];
const NUMERIC = new Set(["admit_batch", "admit_interval_s", "max_active", "admit_target_p99_ms", "pow_bits"]);

function fillControls(s) {
  const shown = state.settings;
  state.settings = s;
  for (const name of FIELDS) {
    const input = $(`c-${name}`);
    // a field being edited keeps what the operator typed; the others follow the server
    if (document.activeElement === input || (shown && input.value !== fieldText(shown, name))) continue;
    input.value = fieldText(s, name);
  }
}

const TIMES = new Set(["prequeue_from", "opens_at"]);

function fieldText(s, name) {
  // with a p99 target the k shown is the admitter's own; the one set is what k returns to
  const value = s[name];
  if (value == null) return "";
  return TIMES.has(name) ? venueText(value) : String(value);
}

// Sale times are typed and shown as the venue's wall clock ("2026-12-24
// 19:00" in Asia/Seoul), the way the people running a Seoul sale say them;
// a time with its own offset or Z is taken as written.
function venueZone() {
  return state.concerts.find((c) => c.concert_id === state.concertId)?.timezone || "UTC";
}

function zoneOffsetMs(tz, at) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(at)).map((p) => [p.type, p.value]));
  return Date.UTC(+parts.year, parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second) - at;
}

function venueText(iso) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;  // not a time: shown as typed, the server refuses it
  const wall = new Date(at + zoneOffsetMs(venueZone(), at)).toISOString();
  return `${wall.slice(0, 10)} ${wall.slice(11, wall.endsWith(":00.000Z") ? 16 : 19)}`;
}

function venueIso(text) {
  const m = text.match(/^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/);
  if (!m) return text;  // an offset of its own (or not a time: the server says so)
  const wall = Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  const tz = venueZone();
  // the offset at that moment (twice: a wall time near a change of offset)
  let at = wall - zoneOffsetMs(tz, wall);
  at = wall - zoneOffsetMs(tz, at);
  return new Date(at).toISOString().replace(".000Z", "Z");
}

function wanted() {
  const changes = {};
  for (const name of FIELDS) {
    const raw = $(`c-${name}`).value.trim();
    if (raw === fieldText(state.settings, name)) continue;
    changes[name] = NUMERIC.has(name) ? Number(raw) : raw === "" ? null : TIMES.has(name) ? venueIso(raw) : raw;
  }
  return changes;
}

// What a change does to people, said before it is made: stops, but also
// moving the sale's times, letting everyone in, and the cap.
function stops(changes) {
  const s = state.settings || {};
  const why = [];
  if (changes.open === false) why.push("close the queue: nobody new can enter");
  if (changes.mode === "reject") why.push("switch to reject: nobody new can enter");
  if (changes.mode === "passthrough") why.push("switch to passthrough: everyone who comes is let in at once, with no line");
  if (changes.mode === "random") why.push("switch to random: places in line stop counting, each admission is a draw");
  if (changes.admit_batch === 0) why.push("set k to 0: nobody waiting is let in");
  for (const [name, what] of [["opens_at", "the opening"], ["prequeue_from", "the pre-queue's start"]]) {
    if (!(name in changes)) continue;
    why.push(changes[name] === null ? `remove ${what} (${s[name] ? venueText(s[name]) : "none"} now)`
      : `move ${what} to ${venueText(changes[name])} ${venueZone()}${s[name] ? ` (from ${venueText(s[name])})` : ""}`);
  }
  if ("max_active" in changes) why.push(`change the cap of active sessions from ${s.max_active || "none"} to ${changes.max_active || "none"}`);
  if (why.length) why.push(`now ${number.format(s.waiting || 0)} waiting and ${number.format(s.active || 0)} active`);
  return why;
}

async function confirmStop(why) {
  const dialog = $("confirm");
  $("confirm-text").textContent = `This will ${why.join("; ")}. Go ahead?`;
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}

// The answer sits next to Apply (an error too, read out), not at the top of
// the page; Apply shows it is working and takes no second press meanwhile.
function controlsSay(text, error = false) {
  const msg = $("controls-msg");
  msg.textContent = text;
  msg.classList.toggle("error", error);
  msg.setAttribute("role", error ? "alert" : "status");
}

async function apply(changes) {
  const button = $("apply");
  if (button.getAttribute("aria-busy") === "true") return;
  if (!Object.keys(changes).length) return controlsSay("Nothing to change.");
  const why = stops(changes);
  if (why.length && !(await confirmStop(why))) return controlsSay("Not changed.");
  const reason = $("c-reason").value.trim();
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  button.textContent = "Applying…";
  try {
    const settings = await admin("PATCH", "/queue", reason ? { ...changes, reason } : changes);
    $("c-reason").value = "";
    state.settings = null;
    fillControls(settings);
    controlsSay(`Changed: ${Object.keys(changes).join(", ")}.`);
    say("", "info");
    await refresh(true);
  } catch (e) {
    controlsSay(`Not changed: ${e.message}`, true);
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = false;
    button.textContent = "Apply changes";
  }
}

$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  apply(wanted());
});

$("toggle-open").addEventListener("click", () => apply({ open: !state.settings.open }));

// ---- audit --------------------------------------------------------------------------

function renderAudit({ changes }) {
  state.changes = changes;  // the charts mark them
  const rows = changes.map((c) => {
    const tr = document.createElement("tr");
    const who = c.operator ? `${c.operator} (${c.address})` : c.address;
    for (const v of [when(Date.parse(c.at)), c.field, `${plain(c.old)} → ${plain(c.new)}`, who, c.reason || ""]) {
      tr.append(Object.assign(document.createElement("td"), { textContent: v }));
    }
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("td"), { colSpan: 5, textContent: "No change yet.", className: "muted" }));
    rows.push(tr);
  }
  $("audit").tBodies[0].replaceChildren(...rows);
}

function plain(value) {
  return value == null ? "none" : String(value);
}

if (token()) start(); else show("signin");
