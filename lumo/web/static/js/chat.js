// Chat: threads list, the message log, live steps, the answer as markdown, ranked items and approval cards.
import { get, post, stream } from "/static/js/api.js";
import { approvalCard, draftCard } from "/static/js/cards.js";
import { h, clear, errorBox, invoiceLink, loading, markdown, money } from "/static/js/dom.js";

const STEP_NAMES = { prepare: "Looked up the facts", agent: "Lumo thought", tools: "Ran tools", review: "Waiting for your approval", execute: "Carried out the decision" };

export async function chatView(main, threadId, { ask = null } = {}) {
  const log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const input = h("textarea", { id: "message", name: "message", rows: 2, maxlength: 4000, placeholder: "What should I do today?", required: true });
  const sendButton = h("button", { type: "submit" }, "Send");
  const form = h("form", { class: "composer" }, h("label", { for: "message", class: "visually-hidden" }, "Message to Lumo"), input, sendButton);
  const threads = h("ul", { class: "threads" });
  const side = h(
    "aside",
    { class: "side", "aria-label": "Threads" },
    h("a", { class: "button", href: "#/chat", onclick: () => { if (location.hash === "#/chat") chatView(main, null); } }, "New chat"), // same address: no hashchange
    // Folded on a phone, so the conversation comes first.
    h("details", { open: matchMedia("(min-width: 800px)").matches }, h("summary", {}, h("h2", {}, "Recent threads")), threads),
  );
  clear(main, h("div", { class: "chat" }, side, h("section", { class: "talk", "aria-label": "Chat" }, h("h1", {}, "Chat with Lumo"), log, form)));

  const state = { threadId, busy: false };
  loadThreads(threads, threadId);

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message || state.busy) return;
    input.value = "";
    await turn(state, log, message, { input, sendButton, threads });
  });

  if (threadId) {
    log.append(loading("Opening the thread"));
    try {
      const path = `/v1/threads/${encodeURIComponent(threadId)}`;
      const [{ messages }, result] = await Promise.all([get(`${path}/history`), get(path)]);
      log.lastChild.remove();
      // The thread so far as it was read; the latest turn keeps its items, drafts and cards.
      for (const m of messages) {
        log.append(m.role === "user"
          ? h("div", { class: "msg user" }, h("span", { class: "who" }, "You"), h("p", {}, m.text))
          : h("div", { class: "msg lumo" }, h("span", { class: "who" }, "Lumo"), markdown(m.text)));
      }
      renderResult(log, state, result);
    } catch (err) {
      log.lastChild.remove();
      log.append(errorBox(err.message));
      if (err.status === 404) {
        // No such thread (the server never starts one under an unknown id): the next message starts a new one.
        state.threadId = null;
        history.replaceState(null, "", "#/chat");
      }
    }
  } else {
    log.append(h("p", { class: "hint" }, 'Ask anything about your book, for example "what should I do today?" or "draft a reminder for INV-1042". Enter sends; Shift+Enter starts a new line.'));
  }
  if (ask) await turn(state, log, ask, { input, sendButton, threads });
  else input.focus();
}

async function loadThreads(list, current) {
  try {
    const { threads } = await get("/v1/threads", { limit: 15 });
    clear(list, threads.length ? threads.map((t) => h("li", {}, h("a", { href: `#/chat/${t.thread_id}`, "aria-current": t.thread_id === current ? "page" : null }, t.title))) : h("li", { class: "hint" }, "No threads yet."));
  } catch (err) {
    clear(list, h("li", {}, errorBox(err.message)));
  }
}

async function turn(state, log, message, { input, sendButton, threads }) {
  state.busy = true;
  sendButton.disabled = true;
  log.querySelector(":scope > .hint")?.remove();
  log.append(h("div", { class: "msg user" }, h("span", { class: "who" }, "You"), h("p", {}, message)));
  const steps = h("ol", { class: "steps", "aria-label": "Steps" });
  const working = h("div", { class: "msg lumo working", "aria-busy": "true" }, h("span", { class: "who" }, "Lumo"), h("p", { class: "loading", role: "status" }, "Working…"), steps);
  log.append(working);
  working.scrollIntoView({ block: "end" });
  let failed = null;
  try {
    await stream("/v1/chat/stream", { message, thread_id: state.threadId || undefined }, (name, data) => {
      if (name === "thread") {
        const fresh = !state.threadId;
        state.threadId = data.thread_id;
        if (fresh) history.replaceState(null, "", `#/chat/${data.thread_id}`);
      } else if (name === "step") {
        steps.append(h("li", {}, stepText(data)));
      } else if (name === "message") {
        working.remove();
        renderResult(log, state, data, { steps });
      } else if (name === "error") {
        failed = data.error;
      }
    });
  } catch (err) {
    failed = err.message;
  }
  if (failed) {
    working.remove();
    log.append(errorBox(`Lumo could not answer: ${failed}`));
  }
  state.busy = false;
  sendButton.disabled = false;
  loadThreads(threads, state.threadId);
  input.focus();
}

function stepText(step) {
  const name = STEP_NAMES[step.node] || step.node;
  const parts = [name];
  if (step.tool_calls?.length) parts.push(`: ${step.tool_calls.join(", ")}`);
  if (step.pending_actions?.length) parts.push(` (${step.pending_actions.length} to approve)`);
  return parts.join("");
}

// One answer: the reply, its ranked items, drafts (when nothing waits) and an approval card per pending action.
export function renderResult(log, state, result, { decided = false, steps = null, held = new Set() } = {}) {
  const block = h("div", { class: "msg lumo" }, h("span", { class: "who" }, "Lumo", result.model === "lumo-offline" ? h("span", { class: "badge" }, "offline model") : null));
  const pending = result.pending_actions || [];
  if (result.reply && !pending.length) block.append(markdown(result.reply));
  for (const note of result.notes || []) block.append(h("p", { class: "note" }, note));
  if (steps?.children.length) block.append(h("details", { class: "steps-box" }, h("summary", {}, `Steps (${steps.children.length})`), steps));
  if (result.items?.length) {
    // The reply already words the list; the items themselves come folded, with a "Draft it" each.
    block.append(h("details", { class: "items-box", open: !result.reply }, h("summary", {}, `Work on these (${result.items.length} items)`),
      itemsList(result.items, (number) => ask(log, state, `send the reminder for ${number}`))));
  }
  // After a decision the turn's drafts are history (the card shows what was approved), so they are not offered again.
  if (!pending.length && !decided) for (const d of result.drafts || []) if (!d.skipped_reason) block.append(draftCard(d, (number) => ask(log, state, `send the reminder for ${number}`)));
  if (pending.length) {
    block.append(h("p", {}, pending.length === 1 ? "This waits for your decision; nothing happens until you approve it:" : `These ${pending.length} actions wait for your decision; nothing happens until you approve:`));
    for (const action of pending) block.append(approvalCard(action, (decision) => decide(log, state, action, decision), { held: held.has(action.id) }));
  }
  log.append(block);
  block.scrollIntoView({ block: "nearest" });
}

export function itemsList(items, onDraft) {
  return h("ol", { class: "items" }, items.map((item) => h(
    "li", { class: "item" },
    h("div", { class: "item-head" },
      h("span", { class: "rank" }, `#${item.rank}`), " ",
      item.invoice_number ? invoiceLink(item.invoice_number) : null, " ",
      h("span", {}, item.account || ""), " ",
      item.amount ? h("strong", {}, money(item.amount, item.currency)) : null,
      item.days_overdue > 0 ? h("span", { class: "tag" }, `${item.days_overdue} days overdue`) : null),
    h("ul", { class: "reasons" }, (item.reasons || []).map((r) => h("li", {}, r))),
    h("p", { class: "action" }, "Next: ", item.action),
    item.invoice_number && onDraft ? h("button", { type: "button", class: "secondary", "aria-label": `Draft it: reminder for ${item.invoice_number}`, onclick: (e) => { e.currentTarget.disabled = true; onDraft(item.invoice_number); } }, "Draft it") : null,
  )));
}

async function ask(log, state, message) {
  const form = log.parentElement.querySelector("form.composer");
  if (state.busy) return;
  const input = form.querySelector("textarea");
  input.value = message;
  form.requestSubmit();
}

// Sends one decision; the card has already disabled its buttons, and the server refuses a second decision.
async function decide(log, state, action, decision) {
  const body = { decision: decision.type, action_id: action.id };
  if (decision.type === "edit") body.args = decision.args;
  if (decision.type === "reject") body.reason = decision.reason;
  if (decision.anyway) body.approve_anyway = true;
  const result = await post(`/v1/threads/${encodeURIComponent(state.threadId)}/decision`, body);
  // The answer lists what still waits: those cards are shown again with it, so the old ones go.
  for (const card of log.querySelectorAll(".approval:not(.decided)")) if (card.dataset.action !== action.id) card.remove();
  // Approved yet still waiting: the approval-time checks held it (its description says why).
  const held = new Set(decision.type === "reject" ? [] : (result.pending_actions || []).filter((p) => p.id === action.id).map((p) => p.id));
  renderResult(log, state, result, { decided: true, held });
  return result;
}
