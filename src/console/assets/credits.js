// Credits of one user: balance, available, what open holds reserve, and the
// ledger in pages (newest first, keyset cursor).

import { api, seg, explain } from "./api.js";
import { $, h, put, int, when, table } from "./dom.js";

const PAGE = 20;
let user = "";
let cursors = [null]; // `after` of each page seen; the last is the current one

function facts(c) {
  const held = c.balance - c.available;
  const card = (label, value, id) =>
    h("div", { class: "stat" }, h("span", { class: "stat-label" }, label),
      h("span", { class: "stat-value", id }, value));
  return h("div", { class: "stats" },
    card("Balance", int(c.balance), "credits-balance"),
    card("Available", int(c.available), "credits-available"),
    card("Held by open holds", int(held), "credits-held"),
    card("Refill", `${int(c.refillAmount)} (${c.refillPolicy})`),
    card("Period", `${when(c.period && c.period.start).slice(0, 10)} → ${when(c.period && c.period.end).slice(0, 10)}`));
}

function ledger(list) {
  const rows = list.transactions.map((t) => h("tr", { class: t.isActive ? undefined : "inactive" },
    h("td", { class: "num" }, t.id),
    h("td", {}, when(t.createdAt)),
    h("td", {}, t.kind),
    h("td", { class: "num" }, int(t.amount)),
    h("td", { class: "num" }, int(t.runningBalance)),
    h("td", {}, t.blockId || ""),
    h("td", {}, t.isActive ? "yes" : "no")));
  const page = cursors.length;
  const newer = h("button", { type: "button", class: "secondary", disabled: page === 1 }, "Newer");
  const older = h("button", { type: "button", class: "secondary", disabled: list.nextAfter === null }, "Older");
  newer.addEventListener("click", () => {
    cursors.pop();
    load();
  });
  older.addEventListener("click", () => {
    cursors.push(list.nextAfter);
    load();
  });
  return [
    table(`Ledger, page ${page} (newest first)`,
      [{ label: "Id", num: true }, "When", "Kind", { label: "Amount", num: true },
        { label: "Balance after", num: true }, "Block", "Active"],
      rows.length ? rows : [h("tr", {}, h("td", { colspan: 7 }, "No transactions."))],
      { id: "credits-ledger" }),
    h("div", { class: "pager" }, newer, older),
  ];
}

async function load() {
  if (!user) return;
  const after = cursors[cursors.length - 1];
  const q = `?limit=${PAGE}${after === null ? "" : `&after=${after}`}`;
  try {
    const [c, list] = await Promise.all([
      api(`/users/${seg(user)}/credits`),
      api(`/users/${seg(user)}/credits/transactions${q}`),
    ]);
    $("credits-error").textContent = "";
    put($("credits-body"), h("h3", {}, `User ${c.userId}`), facts(c), ledger(list));
  } catch (e) {
    put($("credits-body"));
    $("credits-error").textContent = explain(e);
  }
}

/** `boundUser`: the user a bound key is limited to (then the only choice). */
export function initCredits(boundUser) {
  const input = $("c-user");
  if (boundUser) {
    input.value = boundUser;
    input.readOnly = true;
    user = boundUser;
  }
  $("credits-form").addEventListener("submit", (e) => {
    e.preventDefault();
    user = input.value.trim();
    cursors = [null];
    load();
  });
}

export function showCredits() {
  load();
}

/** A feed event: refresh when it moved this user's credits (first page only,
 * so a reader paging back is not pulled away). */
export function creditsEvent(ev, visible) {
  if (!visible || !user || ev.userId !== user) return;
  if (!String(ev.event).startsWith("credits.")) return;
  if (cursors.length === 1) load();
}
