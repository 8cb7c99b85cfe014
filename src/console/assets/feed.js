// The live feed: one `/ws` connection for the whole page. Every event goes
// to the views that listen (they refresh what it changed) and to the feed
// panel, which shows it when it passes the filters and the panel is not
// paused. A dropped connection reconnects and resumes after the last event
// seen, so nothing is missed.

import { wsUrl } from "./api.js";
import { $, h, put, when } from "./dom.js";

const KEEP = 1000; // events kept in memory
const SHOW = 200; // events shown
const BACKLOG = 50; // stored events replayed when the page opens

const listeners = [];
const events = []; // newest last
const types = new Set();
let socket = null;
let lastId = null;
let paused = false;
let unseen = 0;
let stopped = false;
let retry = 1000;

/** `fn(event)` for every event, and `fn({event: "connected", ...})`. */
export function onEvent(fn) {
  listeners.push(fn);
}

/** What an event is about: its user, agents and thread, wherever they sit. */
export function subjects(ev) {
  const m = ev.message || {};
  const agents = [ev.agent, m.from, m.to].concat(ev.agents || []).filter(Boolean);
  return {
    type: ev.event,
    user: ev.userId || null,
    agents,
    thread: ev.threadId || m.threadId || null,
  };
}

function filters() {
  return {
    type: $("f-type").value,
    user: $("f-user").value.trim(),
    agent: $("f-agent").value.trim(),
    thread: $("f-thread").value.trim(),
  };
}

function matches(ev, f) {
  const x = subjects(ev);
  if (f.type && x.type !== f.type) return false;
  if (f.user && x.user !== f.user) return false;
  if (f.agent && !x.agents.includes(f.agent)) return false;
  if (f.thread && x.thread !== f.thread) return false;
  return true;
}

/** A short line for what the event says: its scalar fields. */
function summary(ev) {
  const skip = new Set(["event", "id", "createdAt", "userId", "agent", "threadId", "message"]);
  const parts = [];
  const add = (k, v) => {
    if (v === null || typeof v === "object") return;
    parts.push(`${k}=${v}`);
  };
  for (const [k, v] of Object.entries(ev)) if (!skip.has(k)) add(k, v);
  if (ev.data && typeof ev.data === "object") for (const [k, v] of Object.entries(ev.data)) add(k, v);
  if (ev.message) {
    add("from", ev.message.from);
    add("to", ev.message.to);
    add("payloadType", ev.message.payloadType);
  }
  const text = parts.join("  ");
  return text.length > 240 ? `${text.slice(0, 239)}…` : text;
}

function item(ev) {
  const x = subjects(ev);
  const tags = [];
  if (x.user) tags.push(h("span", { class: "tag" }, `user ${x.user}`));
  for (const a of new Set(x.agents)) tags.push(h("span", { class: "tag" }, `agent ${a}`));
  if (x.thread) tags.push(h("span", { class: "tag" }, `thread ${x.thread}`));
  return h("li", { class: "event", "data-type": x.type, "data-id": ev.id },
    h("div", { class: "event-head" },
      h("span", { class: `type type-${x.type.split(".")[0]}` }, x.type),
      h("time", { datetime: ev.createdAt }, when(ev.createdAt)),
      h("span", { class: "muted" }, `#${ev.id}`)),
    tags.length ? h("div", { class: "tags" }, tags) : null,
    h("div", { class: "summary" }, summary(ev)));
}

function status() {
  const f = filters();
  const shown = events.filter((e) => matches(e, f)).length;
  let text = `${shown} of ${events.length} events shown`;
  if (paused) text += ` — paused, ${unseen} new since`;
  $("feed-status").textContent = text;
}

/** Redraws the list from the events kept (filters changed, resumed). */
function render() {
  const f = filters();
  const shown = [];
  for (let i = events.length - 1; i >= 0 && shown.length < SHOW; i--) {
    if (matches(events[i], f)) shown.push(item(events[i]));
  }
  put($("feed-list"), shown);
  status();
}

function addType(t) {
  if (types.has(t)) return;
  types.add(t);
  const select = $("f-type");
  const opts = [...types].sort().map((x) => h("option", { value: x }, x));
  const current = select.value;
  put(select, h("option", { value: "" }, "all types"), opts);
  select.value = current;
}

function receive(ev) {
  if (typeof ev.id === "number") {
    if (lastId !== null && ev.id <= lastId) return; // already seen (a replay overlap)
    lastId = ev.id;
    events.push(ev);
    if (events.length > KEEP) events.splice(0, events.length - KEEP);
    addType(ev.event);
    if (paused) {
      unseen += 1;
    } else if (matches(ev, filters())) {
      const list = $("feed-list");
      list.prepend(item(ev));
      while (list.children.length > SHOW) list.lastElementChild.remove();
    }
    status();
  }
  for (const fn of listeners) fn(ev);
}

function setLive(text, ok) {
  const el = $("live");
  el.textContent = text;
  el.classList.toggle("ok", ok);
}

function connect() {
  setLive("connecting", false);
  const ws = new WebSocket(wsUrl());
  socket = ws;
  ws.addEventListener("message", (msg) => {
    let ev;
    try {
      ev = JSON.parse(msg.data);
    } catch (e) {
      return;
    }
    if (ev.event === "connected") {
      retry = 1000;
      const since = lastId !== null ? lastId : Math.max(0, (ev.lastEventId || 0) - BACKLOG);
      ws.send(JSON.stringify({ cmd: "subscribe", since }));
      setLive("live", true);
      for (const fn of listeners) fn(ev);
    } else if (ev.event === "subscribed" || ev.event === "pong") {
      // nothing to show
    } else if (ev.event === "error") {
      $("feed-status").textContent = `feed: ${ev.error}`;
    } else {
      receive(ev);
    }
  });
  ws.addEventListener("close", (e) => {
    if (socket !== ws) return;
    socket = null;
    setLive("offline", false);
    for (const fn of listeners) fn({ event: "closed", code: e.code });
    if (stopped || e.code === 4001 || e.code === 4003) return;
    setTimeout(() => {
      if (!stopped) connect();
    }, retry);
    retry = Math.min(retry * 2, 15000);
  });
}

/** Opens the feed and wires the panel's controls. */
export function startFeed() {
  stopped = false;
  const pause = $("feed-pause");
  pause.addEventListener("click", () => {
    paused = !paused;
    unseen = 0;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) render();
    else status();
  });
  $("feed-clear").addEventListener("click", () => {
    events.length = 0;
    unseen = 0;
    render();
  });
  $("feed-filters").addEventListener("input", render);
  $("feed-filters").addEventListener("submit", (e) => e.preventDefault());
  connect();
}

/** Closes the feed for good (the key was forgotten). */
export function stopFeed() {
  stopped = true;
  if (socket) socket.close(1000);
  socket = null;
}
