// Variants of one agent side by side: runs, success rate, p50/p95 latency,
// tokens and cost, the active one marked.

import { api, seg, explain } from "./api.js";
import { $, h, put, int, usd, pct, ms } from "./dom.js";

let agent = "";

function compare(r) {
  const vs = r.variants;
  if (!vs.length) return h("p", { class: "muted" }, `${r.agentName} has no variants.`);
  const line = (label, f) => h("tr", {}, h("th", { scope: "row" }, label),
    vs.map((v) => h("td", { class: "num" }, f(v))));
  return h("div", { class: "scroll" }, h("table", { id: "variants-table", class: "side" },
    h("caption", {}, `Variants of ${r.agentName}`),
    h("thead", {}, h("tr", {}, h("td", {}),
      vs.map((v) => h("th", { scope: "col", class: "num", "data-slug": v.variantSlug },
        v.variantName, h("br"), h("span", { class: "muted" }, v.variantSlug),
        v.isActive ? h("span", { class: "badge ok" }, "active") : null)))),
    h("tbody", {},
      line("Runs", (v) => int(v.runs)),
      line("Success rate", (v) => (v.successRate === null ? "—" : pct(v.successRate * 100))),
      line("p50 latency", (v) => ms(v.p50LatencyMs)),
      line("p95 latency", (v) => ms(v.p95LatencyMs)),
      line("Avg latency", (v) => ms(v.avgLatencyMs)),
      line("Avg quality", (v) => (v.avgQualityScore === null ? "—" : v.avgQualityScore.toFixed(2))),
      line("Tokens", (v) => int(v.totalTokens)),
      line("Cost", (v) => usd(v.totalCost)))));
}

async function load() {
  if (!agent) {
    put($("variants-body"), h("p", { class: "muted" }, "Choose an agent."));
    return;
  }
  try {
    const r = await api(`/agents/${seg(agent)}/variants/compare`);
    $("variants-error").textContent = "";
    put($("variants-body"), compare(r));
  } catch (e) {
    put($("variants-body"));
    $("variants-error").textContent = explain(e);
  }
}

/** Fills the agent choice from the agents list, keeping the current one. */
export async function showVariants() {
  const select = $("v-agent");
  try {
    const list = await api("/agents");
    const names = list.agents.map((a) => a.name).sort();
    if (!agent || !names.includes(agent)) agent = names[0] || "";
    put(select, names.map((n) => h("option", { value: n }, n)));
    select.value = agent;
  } catch (e) {
    $("variants-error").textContent = explain(e);
    return;
  }
  await load();
}

export function initVariants() {
  $("variants-form").addEventListener("submit", (e) => {
    e.preventDefault();
    agent = $("v-agent").value;
    load();
  });
  $("v-agent").addEventListener("change", () => {
    agent = $("v-agent").value;
    load();
  });
}

export function variantsEvent(ev, visible) {
  if (visible && String(ev.event).startsWith("variant.")) load();
}
