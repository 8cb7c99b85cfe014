// Small DOM helpers: elements are built with text nodes, never from HTML
// strings, so data from the API cannot inject markup.

const SVG = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** `h("td", {class: "num"}, "12")`. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

export function $(id) {
  return document.getElementById(id);
}

/** Replaces the children of `el`. */
export function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

const intFmt = new Intl.NumberFormat("en-US");
const usdFmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });

export function int(n) {
  return n === null || n === undefined ? "—" : intFmt.format(n);
}

export function usd(n) {
  return n === null || n === undefined ? "—" : `$${usdFmt.format(n)}`;
}

export function pct(n) {
  return n === null || n === undefined ? "—" : `${(Math.round(n * 10) / 10).toFixed(1)} %`;
}

export function ms(n) {
  return n === null || n === undefined ? "—" : `${intFmt.format(Math.round(n))} ms`;
}

/** `2026-12-07 04:31:09` in UTC: what the API speaks. */
export function when(t) {
  if (!t) return "—";
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

/** A table with a caption, header row and rows of cells (strings or nodes). */
export function table(caption, heads, rows, attrs = {}) {
  return h("div", { class: "scroll" },
    h("table", attrs,
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, heads.map((x) =>
        h("th", { scope: "col", class: x.num ? "num" : undefined }, x.label || x)))),
      h("tbody", {}, rows)));
}

/** Calls `fn` at most once per `wait` ms, after the last call. */
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
