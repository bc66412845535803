// Small DOM helpers: elements are built with textContent, never from strings of HTML (the markdown
// renderer is the one exception, and its output goes through DOMPurify).
import { marked } from "/static/vendor/marked.esm.js";
import DOMPurify from "/static/vendor/purify.es.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const invoiceHref = (number) => `#/invoice/${encodeURIComponent(number)}`;
export const accountHref = (id) => `#/account/${encodeURIComponent(id)}`;

export function invoiceLink(number) {
  return h("a", { href: invoiceHref(number) }, number);
}

// Invoice numbers as the CRM writes them (INV-1042, INV-100440); the markdown's text nodes get links.
const INVOICE_NUMBER = /\bINV-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b/g;

export function markdown(text) {
  const box = h("div", { class: "md" });
  box.innerHTML = DOMPurify.sanitize(marked.parse(text || "", { gfm: true, breaks: true }));
  linkInvoiceNumbers(box);
  for (const a of box.querySelectorAll("a[href^='http']")) {
    a.setAttribute("rel", "noopener noreferrer");
    a.setAttribute("target", "_blank");
  }
  return box;
}

function linkInvoiceNumbers(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.parentElement.closest("a, code, pre") && INVOICE_NUMBER.test(node.nodeValue)) nodes.push(node);
    INVOICE_NUMBER.lastIndex = 0;
  }
  for (const node of nodes) {
    const parts = [];
    let last = 0;
    for (const match of node.nodeValue.matchAll(INVOICE_NUMBER)) {
      parts.push(node.nodeValue.slice(last, match.index), invoiceLink(match[0]));
      last = match.index + match[0].length;
    }
    parts.push(node.nodeValue.slice(last));
    node.replaceWith(...parts);
  }
}

export function money(amount, currency) {
  const value = Number(amount);
  if (!Number.isFinite(value)) return `${currency} ${amount}`;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    return `${currency} ${amount}`;
  }
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function loading(what = "Loading") {
  return h("p", { class: "loading", role: "status" }, `${what}…`);
}

export function errorBox(message) {
  return h("p", { class: "error", role: "alert" }, message);
}

// The main menu marks the page shown (also when a view changes the address without a hashchange).
export function markNav(hash = location.hash) {
  for (const a of document.querySelectorAll("nav a")) {
    if (hash.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}
