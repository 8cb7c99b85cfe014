// Usage: tokens and cost per UTC day over the last 30 days (inline SVG bar
// charts), totals by model and by agent, and thread budgets, fullest first,
// those at 90 % or more marked.

import { api, explain, ApiError } from "./api.js";
import { $, h, s, put, int, usd, pct, ms, table } from "./dom.js";

const DAYS = 30;
const HOT = 90;

function day(d) {
  return d.toISOString().slice(0, 10);
}

/** The last 30 UTC days, oldest first, and the range to ask for. */
function window30() {
  const now = new Date();
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
  const days = [];
  for (let i = DAYS; i >= 1; i--) days.push(day(new Date(end.getTime() - i * 86400000)));
  const start = new Date(end.getTime() - DAYS * 86400000);
  return { days, start: start.toISOString(), end: end.toISOString() };
}

/** A bar chart of `values` (one per day) with its largest value marked. */
function chart(id, title, days, byDay, pick, format) {
  const W = 600, H = 200, L = 8, B = 24, T = 8;
  const bw = (W - L * 2) / days.length;
  const max = Math.max(0, ...days.map((d) => (byDay.has(d) ? pick(byDay.get(d)) : 0)));
  const bars = days.map((d, i) => {
    const rec = byDay.get(d);
    const v = rec ? pick(rec) : 0;
    const bh = max > 0 ? Math.max(rec ? 2 : 0, (v / max) * (H - B - T)) : 0;
    const x = L + i * bw;
    return s("rect", {
      class: rec ? "bar has-data" : "bar",
      x: (x + 1).toFixed(1), y: (H - B - bh).toFixed(1),
      width: Math.max(1, bw - 2).toFixed(1), height: bh.toFixed(1),
      "data-date": d, "data-value": v,
    }, s("title", {}, `${d}: ${format(v)}`));
  });
  // Every seventh day is labelled, counted back from today (the last one is
  // anchored at its end so it stays inside the chart).
  const labels = days.map((d, i) => {
    const back = days.length - 1 - i;
    if (back % 7 !== 0) return null;
    const last = back === 0;
    return s("text", {
      x: (last ? W - L : L + i * bw + bw / 2).toFixed(1), y: H - 6, class: "axis",
      "text-anchor": last ? "end" : "middle",
    }, d.slice(5));
  });
  const summary = `${title}: ${byDay.size} of the last ${DAYS} days have records; highest ${format(max)}.`;
  return h("figure", { class: "chart" },
    h("figcaption", {}, title, h("span", { class: "muted" }, ` — max ${format(max)}`)),
    s("svg", { id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary },
      s("line", { x1: L, y1: H - B, x2: W - L, y2: H - B, class: "base" }),
      bars, labels));
}

function daysTable(days, byDay) {
  const rows = days.filter((d) => byDay.has(d)).reverse().map((d) => {
    const r = byDay.get(d);
    return h("tr", {}, h("td", {}, d), h("td", { class: "num" }, int(r.requestCount)),
      h("td", { class: "num" }, int(r.totalTokens)), h("td", { class: "num" }, usd(r.totalCost)));
  });
  return h("details", {}, h("summary", {}, "Days with records as a table"),
    table("Usage per day", ["Day", { label: "Requests", num: true }, { label: "Tokens", num: true },
      { label: "Cost", num: true }], rows.length ? rows : [h("tr", {}, h("td", { colspan: 4 }, "No records."))]));
}

function totals(caption, key, items) {
  const rows = items.map((x) => h("tr", {}, h("td", {}, x[key]),
    h("td", { class: "num" }, int(x.requestCount)), h("td", { class: "num" }, int(x.totalTokens)),
    h("td", { class: "num" }, usd(x.totalCost)), h("td", { class: "num" }, ms(x.avgLatencyMs))));
  return table(caption, [key === "model" ? "Model" : "Agent", { label: "Requests", num: true },
    { label: "Tokens", num: true }, { label: "Cost", num: true }, { label: "Avg latency", num: true }],
  rows.length ? rows : [h("tr", {}, h("td", { colspan: 5 }, "No usage yet."))]);
}

function budgets(list) {
  const threads = [...list.threads].sort((a, b) => b.percentUsed - a.percentUsed);
  const rows = threads.map((t) => {
    const hot = t.percentUsed >= HOT;
    return h("tr", { class: hot ? "hot" : undefined, "data-thread": t.threadId },
      h("td", {}, t.threadId), h("td", { class: "num" }, int(t.totalTokens)),
      h("td", { class: "num" }, int(t.maxTokens)),
      h("td", { class: "num" }, h("meter", { min: 0, max: 100, high: HOT, value: Math.min(100, t.percentUsed), "aria-hidden": "true" }),
        " ", pct(t.percentUsed)),
      h("td", {}, t.isExhausted ? "exhausted" : hot ? "≥ 90 %" : ""));
  });
  return table(`Thread budgets, fullest first (${list.count} of ${list.total})`,
    ["Thread", { label: "Tokens", num: true }, { label: "Budget", num: true },
      { label: "Used", num: true }, "Mark"],
    rows.length ? rows : [h("tr", {}, h("td", { colspan: 5 }, "No thread budgets."))], { id: "budgets" });
}

/** Each part loads on its own: a bound key sees its daily figures even
 * though the all-users totals are refused to it. */
async function part(call, draw) {
  try {
    return draw(await call);
  } catch (e) {
    return h("p", { class: e instanceof ApiError ? "error" : "muted" }, explain(e));
  }
}

let bound = null;

/** A key bound to a user gets its own daily figures; totals over all users
 * and thread budgets are refused to it, so they are not asked for. */
export function initUsage(boundUser) {
  bound = boundUser || null;
}

function notForBound() {
  return Promise.reject(new Error(
    `Totals over all users are not shown to a key bound to user ${bound}.`));
}

export async function showUsage() {
  const w = window30();
  const q = `?start=${encodeURIComponent(w.start)}&end=${encodeURIComponent(w.end)}`;
  const [daily, overview, threads] = await Promise.all([
    part(api(`/usage/daily${q}`), (r) => {
      const byDay = new Map(r.days.map((d) => [String(d.date).slice(0, 10), d]));
      return h("div", {},
        h("div", { class: "charts" },
          chart("chart-tokens", "Tokens per day", w.days, byDay, (d) => d.totalTokens, int),
          chart("chart-cost", "Cost per day (USD)", w.days, byDay, (d) => d.totalCost, usd)),
        daysTable(w.days, byDay));
    }),
    part(bound ? notForBound() : api("/usage"), (r) => h("div", { class: "two" },
      totals("By model (current epoch)", "model", r.usage.byModel),
      totals("By agent (current epoch)", "agentId", r.usage.byAgent))),
    part(bound ? notForBound() : api("/usage/threads?limit=100"), budgets),
  ]);
  $("usage-error").textContent = "";
  put($("usage-body"), daily, overview, threads);
}

export function usageEvent(ev, visible) {
  const t = String(ev.event);
  if (visible && (t === "usage" || t.startsWith("budget.") || t === "usage.reset" || t === "model_price.changed")) {
    showUsage();
  }
}
