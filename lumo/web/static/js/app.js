// The shell: sign-in, the header (who, whose book), and the hash router (#/today, #/chat/ID, #/invoice/N...).
import { ApiError, get, post, session, whenSignedOut } from "/static/js/api.js";
import { chatView } from "/static/js/chat.js";
import { h, clear, errorBox, markNav } from "/static/js/dom.js";
import { accountPage, accountsPage, invoicePage, overduePage, stalePage, todayPage } from "/static/js/pages.js";

const main = document.getElementById("main");
const header = document.querySelector("header.top");
const notice = document.getElementById("notice");
let me = null;

export function say(message) {
  notice.textContent = message || "";
  notice.hidden = !message;
}

function signInView(message, { calm = false } = {}) {
  header.hidden = true;
  me = null;
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const problem = !message ? null : calm ? h("p", { class: "notice", role: "status" }, message) : errorBox(message);
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Lumo"),
    problem,
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { class: "hint" }, "Paste a token from ", h("code", {}, "lumo tokens create --user EMAIL"),
      ", or open the link that ", h("code", {}, "lumo web-link --user EMAIL"), " prints. It is kept for this browser tab only."),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.token = input.value.trim();
    await start();
  });
  clear(main, form);
  input.focus();
}

async function exchangeLink(link) {
  history.replaceState(null, "", location.pathname + "#/today"); // the link works once: drop it from the address
  clear(main, h("p", { class: "loading", role: "status" }, "Signing in…"));
  try {
    const answer = await post("/v1/web-links/exchange", { link }, { auth: false });
    session.token = answer.token;
    return null;
  } catch (err) {
    return err.message;
  }
}

function renderHeader() {
  header.hidden = false;
  document.getElementById("me").textContent = `${me.name} (${me.role})`;
  const label = header.querySelector(".book");
  const select = document.getElementById("book");
  label.hidden = me.team.length === 0;
  const everyone = me.role === "rep" ? "My book" : "My team";
  clear(select, h("option", { value: "" }, everyone), me.team.map((p) => h("option", { value: p.email }, `${p.name} (${p.email})`)));
  if (!me.team.some((p) => p.email === session.rep)) session.rep = "";
  select.value = session.rep;
  select.onchange = () => {
    session.rep = select.value;
    route();
  };
}

const routes = [
  [/^#\/today$/, () => todayPage(main)],
  [/^#\/chat(?:\/([A-Za-z0-9_-]+))?$/, (m) => chatView(main, m[1] || null)],
  [/^#\/overdue$/, () => overduePage(main)],
  [/^#\/stale$/, () => stalePage(main)],
  [/^#\/accounts$/, () => accountsPage(main)],
  [/^#\/account\/(.+)$/, (m) => accountPage(main, decodeURIComponent(m[1]))],
  [/^#\/invoice\/(.+)$/, (m) => invoicePage(main, decodeURIComponent(m[1]))],
];

async function route() {
  if (!me) return;
  say("");
  const hash = location.hash || "#/today";
  markNav(hash);
  for (const [pattern, view] of routes) {
    const match = hash.match(pattern);
    if (match) {
      try {
        await view(match);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) clear(main, errorBox(err.message || String(err)));
      }
      return;
    }
  }
  clear(main, errorBox("There is no such page."), h("p", {}, h("a", { href: "#/today" }, "Go to today's list")));
}

async function start() {
  const fragment = location.hash.match(/^#signin=([A-Za-z0-9_-]+)$/);
  if (fragment) {
    const problem = await exchangeLink(fragment[1]);
    if (problem) return signInView(problem);
  }
  if (!session.token) return signInView();
  try {
    me = await get("/v1/me");
  } catch (err) {
    if (err.status !== 401) signInView(err.message);
    return;
  }
  renderHeader();
  if (!location.hash || location.hash === "#") history.replaceState(null, "", "#/today");
  await route();
}

whenSignedOut((message) => {
  session.token = null;
  signInView(message);
});
document.getElementById("signout").addEventListener("click", async () => {
  // The server ends a sign-in link's session; a failure (already expired, offline) still signs the page out.
  await post("/v1/sign-out", {}).catch(() => null);
  session.token = null;
  session.rep = "";
  history.replaceState(null, "", location.pathname);
  signInView("You are signed out.", { calm: true });
});
window.addEventListener("hashchange", () => (location.hash.startsWith("#signin=") ? start() : route()));
start();
