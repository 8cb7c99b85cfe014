// The console's entry: find out whether a key is needed (the server may run
// open), ask for one, learn what it may do (GET /api/v1/keys/me), then show
// the organism and the views, kept live by the feed.

import { api, savedKey, saveKey, forgetKey, ApiError, explain } from "./api.js";
import { $, debounce, int } from "./dom.js";
import { startFeed, stopFeed, onEvent } from "./feed.js";
import { initCredits, showCredits, creditsEvent } from "./credits.js";
import { initUsage, showUsage, usageEvent } from "./usage.js";
import { initAgents, showAgents, agentsEvent } from "./agents.js";
import { initVariants, showVariants, variantsEvent } from "./variants.js";

const VIEWS = {
  feed: () => {},
  credits: showCredits,
  usage: showUsage,
  agents: showAgents,
  variants: showVariants,
};
let current = "feed";

function showOrganism(o) {
  $("org-name").textContent = o.name;
  document.title = `${o.name} — agentplane console`;
  const status = $("org-status");
  status.hidden = false;
  status.textContent = o.status;
  status.className = `badge status-${o.status}`;
  $("org-facts").textContent =
    `${int(o.agentCount)} agents · ${int(o.activeThreads)} active threads · ${int(o.totalMessages)} messages`;
}

async function refreshOrganism() {
  try {
    showOrganism(await api("/organism"));
  } catch (e) {
    $("org-facts").textContent = explain(e);
  }
}

function route() {
  const name = location.hash.replace(/^#/, "");
  current = Object.prototype.hasOwnProperty.call(VIEWS, name) ? name : "feed";
  for (const v of Object.keys(VIEWS)) {
    $(`view-${v}`).hidden = v !== current;
    const tab = $(`tab-${v}`);
    if (v === current) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  VIEWS[current]();
}

function describe(me) {
  if (me.open) return "open server (no key needed)";
  const bound = me.userId ? `, bound to user ${me.userId}` : "";
  return `${me.role} key${bound}`;
}

async function start(me) {
  $("login").hidden = true;
  $("boot").hidden = true;
  $("app").hidden = false;
  $("who").textContent = describe(me);
  $("forget").hidden = me.open;
  document.body.dataset.role = me.open ? "open" : me.role;
  initAgents(me.open || me.role === "admin" || me.role === "service");
  initCredits(me.userId);
  initUsage(me.userId);
  initVariants();
  const refreshView = debounce((ev) => {
    const v = (name) => current === name;
    creditsEvent(ev, v("credits"));
    usageEvent(ev, v("usage"));
    agentsEvent(ev, v("agents"));
    variantsEvent(ev, v("variants"));
  }, 300);
  const refreshOrg = debounce(refreshOrganism, 500);
  onEvent((ev) => {
    if (ev.event === "connected" && ev.organism) showOrganism(ev.organism);
    else if (ev.event === "closed" && (ev.code === 4001 || ev.code === 4003)) signedOut("The key was revoked or is no longer valid.");
    else {
      if (["organism", "agent_state", "agent_removed", "thread_updated"].includes(ev.event)) refreshOrg();
      refreshView(ev);
    }
  });
  window.addEventListener("hashchange", route);
  await refreshOrganism();
  route();
  startFeed();
}

function signedOut(message) {
  forgetKey();
  stopFeed();
  location.hash = "";
  sessionStorage.setItem("agentplane.notice", message || "");
  location.reload();
}

function askForKey(message) {
  $("boot").hidden = true;
  $("app").hidden = true;
  $("login").hidden = false;
  $("key-error").textContent = message || "";
  $("key-input").focus();
}

/** Who the key is, or null when a key is needed: none was given and the
 * server is not open, or the key is refused (401). */
async function whoAmI(key) {
  try {
    const me = await api("/keys/me", { key });
    return me.open || me.role ? me : null;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

async function boot() {
  $("forget").addEventListener("click", () => signedOut(""));
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    try {
      const me = await whoAmI(key);
      if (!me) {
        $("key-error").textContent = "This key is not valid (unknown or revoked).";
        return;
      }
      saveKey(key);
      $("key-input").value = "";
      await start(me);
    } catch (err) {
      $("key-error").textContent = explain(err);
    }
  });
  const notice = sessionStorage.getItem("agentplane.notice") || "";
  sessionStorage.removeItem("agentplane.notice");
  try {
    const key = savedKey();
    const me = await whoAmI(key);
    if (me) return start(me);
    if (key) forgetKey();
    askForKey(notice);
  } catch (err) {
    askForKey(explain(err));
  }
}

boot();
