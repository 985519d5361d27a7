// The pre-queue's draw, checked in the buyer's own browser: the revealed
// seed against the commitment published before anyone joined, the buyer's
// own key, and their place among every drawn key (GET .../lottery/draw).
import { call } from "./api.js";
import { formatNumber, t, translatePage } from "./i18n.js";

const $ = (id) => document.getElementById(id);
translatePage();
const concertId = Number(new URLSearchParams(location.search).get("concert")) || 1;
const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
const bytes = (text) => Uint8Array.from(text.match(/../g).map((h) => parseInt(h, 16)));

function fact(term, value) {
  const div = document.createElement("div");
  div.append(Object.assign(document.createElement("dt"), { textContent: term }),
    Object.assign(document.createElement("dd"), { textContent: value, className: "mono" }));
  $("draw-facts").append(div);
}

async function keyOf(seed, userId) {
  const key = await crypto.subtle.importKey("raw", bytes(seed), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${concertId}:${userId}`)));
}

// Keys come a page at a time in ascending order: a place is the number of
// keys before one's own, plus one.
async function placeOf(mine) {
  let after = "", before = 0;
  for (;;) {
    const { keys } = await call("GET", `/concerts/${concertId}/queue/lottery/draw?limit=10000${after ? `&after=${after}` : ""}`);
    const i = keys.findIndex((k) => k >= mine);
    if (i >= 0) return keys[i] === mine ? before + i + 1 : null;
    if (keys.length < 10000) return null;
    before += keys.length;
    after = keys.at(-1);
  }
}

async function check() {
  let lottery;
  try { lottery = await call("GET", `/concerts/${concertId}/queue/lottery`); }
  catch (e) { $("draw-verdict").textContent = t("draw.none"); return; }
  fact(t("draw.commitment"), lottery.commitment);
  if (!lottery.seed) {
    $("draw-verdict").textContent = t("draw.notYet");
    return;
  }
  fact(t("draw.seed"), lottery.seed);
  fact(t("draw.entries"), formatNumber(lottery.entries));
  const digest = hex(await crypto.subtle.digest("SHA-256", bytes(lottery.seed)));
  $("draw-verdict").textContent = t(digest === lottery.commitment ? "draw.ok" : "draw.bad");
  const userId = localStorage.getItem("userId");
  if (!userId) return;
  const mine = await keyOf(lottery.seed, userId);
  fact(t("draw.yourKey"), mine);
  const place = await placeOf(mine);
  $("draw-mine").textContent = place ? t("draw.place", { n: formatNumber(place), of: formatNumber(lottery.entries) }) : t("draw.notIn");
}

check();
