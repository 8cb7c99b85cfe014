// Agents: state, queue depth and what each is doing; pause and resume for
// keys that may (service and admin, or an open server). A reader's console
// shows no such buttons: the server would refuse them anyway.

import { api, seg, explain } from "./api.js";
import { $, h, put, int, when, table } from "./dom.js";

let canControl = false;
let agents = [];

async function act(name, action, button) {
  button.disabled = true;
  try {
    await api(`/agents/${seg(name)}/${action}`, { method: "POST" });
    $("agents-error").textContent = "";
  } catch (e) {
    $("agents-error").textContent = `${name}: ${explain(e)}`;
  }
  await showAgents();
}

function row(a) {
  const paused = a.state === "paused";
  const action = paused ? "resume" : "pause";
  let control = null;
  if (canControl) {
    control = h("button", { type: "button", class: "small", "data-action": action, "data-agent": a.name,
      "aria-label": `${paused ? "Resume" : "Pause"} ${a.name}` }, paused ? "Resume" : "Pause");
    control.addEventListener("click", () => act(a.name, action, control));
  }
  return h("tr", { "data-agent": a.name },
    h("th", { scope: "row" }, a.name),
    h("td", {}, h("span", { class: `state state-${a.state}`, "data-state": a.state }, a.state)),
    canControl ? h("td", {}, control) : null,
    h("td", { class: "num" }, int(a.queueDepth)),
    h("td", {}, a.currentThread || "—"),
    h("td", { class: "num" }, int(a.messageCount)),
    h("td", {}, when(a.lastActivity)));
}

export async function showAgents() {
  try {
    const list = await api("/agents");
    agents = list.agents;
    // The control sits next to the state, so a phone shows it without scrolling.
    const heads = ["Agent", "State", canControl ? "Control" : null, { label: "Queue", num: true },
      "Current thread", { label: "Messages", num: true }, "Last activity"].filter(Boolean);
    const rows = agents.map(row);
    // A redraw (an event arrived) keeps the keyboard focus on the same
    // agent's control rather than dropping it to the page.
    const focused = $("agents-body").contains(document.activeElement)
      ? document.activeElement.dataset.agent : null;
    put($("agents-body"), table(`${list.count} agents`, heads,
      rows.length ? rows : [h("tr", {}, h("td", { colspan: heads.length }, "No agents registered."))],
      { id: "agents-table" }));
    if (focused) {
      const again = [...$("agents-body").querySelectorAll("button")].find((x) => x.dataset.agent === focused);
      if (again) again.focus();
    }
  } catch (e) {
    put($("agents-body"));
    $("agents-error").textContent = explain(e);
  }
  return agents;
}

export function initAgents(control) {
  canControl = control;
}

export function agentsEvent(ev, visible) {
  const t = String(ev.event);
  if (visible && (t === "agent_state" || t === "agent_removed" || t === "message" || t.startsWith("inbox."))) {
    showAgents();
  }
}
