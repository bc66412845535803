// Approval cards: exactly what an action will do, and Approve / Edit / Reject. A card sends one decision:
// its buttons are disabled on the first click, and the server refuses a second decision anyway.
import { h, clear, errorBox, invoiceLink } from "/static/js/dom.js";

const TITLES = { send_email: "Send email", update_invoice_status: "Change invoice status", create_follow_up_task: "Create task", log_note: "Log note" };
const LABELS = { invoice_number: "Invoice", invoice_numbers: "Invoices", status: "New status", reason: "Why", title: "Task", due_date: "Due", account: "Account", text: "Note" };

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function invoices(numbers) {
  return (numbers || []).flatMap((n, i) => (i ? [", ", invoiceLink(n)] : [invoiceLink(n)]));
}

function facts(action) {
  const a = action.args || {};
  if (action.tool === "send_email") {
    return h("dl", { class: "facts" },
      field("To", (a.to || []).join(", ")),
      a.cc?.length ? field("Cc", a.cc.join(", ")) : null,
      field("Subject", a.subject),
      field("Invoices", invoices(a.invoice_numbers)),
      h("dt", {}, "Body"), h("dd", {}, h("pre", { class: "body" }, a.body)));
  }
  return h("dl", { class: "facts" }, Object.entries(a).filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) =>
    field(LABELS[k] || k, k === "invoice_number" ? invoiceLink(v) : Array.isArray(v) ? v.join(", ") : String(v))));
}

export function approvalCard(action, onDecide, { held = false } = {}) {
  const status = h("p", { class: "status", role: "status" });
  const buttons = [];
  const button = (label, onclick, cls = "") => {
    const b = h("button", { type: "button", class: cls, onclick }, label);
    buttons.push(b);
    return b;
  };
  const extra = h("div", { class: "extra" });
  const card = h("article", { class: `card approval${held ? " held" : ""}`, "data-action": action.id, "aria-label": `${TITLES[action.tool] || action.tool}: waiting for approval` },
    h("h3", {}, TITLES[action.tool] || action.tool),
    h("p", { class: held ? "description error" : "description" }, action.description),
    facts(action), extra, status);

  async function send(decision, doing) {
    if (card.classList.contains("sending") || card.classList.contains("decided")) return; // one decision per card
    card.classList.add("sending");
    for (const b of card.querySelectorAll("button, textarea, input")) b.disabled = true;
    status.textContent = doing;
    try {
      const result = await onDecide(decision);
      card.classList.add("decided");
      if (decision.type === "edit") card.querySelector(".facts").replaceWith(facts({ ...action, args: { ...action.args, ...decision.args } }));
      extra.replaceChildren();
      status.textContent = outcome(decision, action, result);
    } catch (err) {
      card.classList.add("decided"); // a refused decision is not retried from this card
      clear(status, errorBox(err.message));
    } finally {
      card.classList.remove("sending");
    }
  }

  const actions = h("div", { class: "buttons" },
    held
      ? button("Approve anyway", () => send({ type: "approve", anyway: true }, "Approving anyway…"))
      : button("Approve", () => send({ type: "approve" }, "Approving…")),
    action.tool === "send_email" ? button("Edit", () => showEdit(), "secondary") : null,
    button("Reject", () => showReject(), "danger"));
  card.insertBefore(actions, status);

  function showEdit() {
    const a = action.args;
    const subject = h("input", { id: `subject-${action.id}`, value: a.subject, maxlength: 500 });
    const body = h("textarea", { id: `body-${action.id}`, rows: 12 });
    body.value = a.body;
    clear(extra, h("form", { class: "edit", onsubmit: (e) => {
      e.preventDefault();
      send({ type: "edit", args: { subject: subject.value, body: body.value } }, "Approving your edited email…");
    } },
      h("label", { for: subject.id }, "Subject"), subject,
      h("label", { for: body.id }, "Email text"), body,
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Approve edited email"), h("button", { type: "button", class: "secondary", onclick: () => clear(extra) }, "Cancel"))));
    body.focus();
  }

  function showReject() {
    const reason = h("input", { id: `reason-${action.id}`, maxlength: 2000, placeholder: "e.g. they paid by wire yesterday" });
    clear(extra, h("form", { class: "reject", onsubmit: (e) => {
      e.preventDefault();
      send({ type: "reject", reason: reason.value.trim() || "rejected by the rep" }, "Rejecting…");
    } },
      h("label", { for: reason.id }, "Reason for rejecting"), reason,
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "danger" }, "Reject it"), h("button", { type: "button", class: "secondary", onclick: () => clear(extra) }, "Cancel"))));
    reason.focus();
  }
  return card;
}

function outcome(decision, action, result) {
  if (decision.type === "reject") return `Rejected${decision.reason ? `: ${decision.reason}` : ""}. Nothing was done.`;
  const verb = decision.anyway ? "Approved anyway" : decision.type === "edit" ? "Approved with your changes" : "Approved";
  const still = (result.pending_actions || []).some((p) => p.id === action.id);
  if (still) return `${verb}, but the checks held it: see below.`;
  return `${verb}. The result is below.`;
}

// A draft that nothing waits on yet (e.g. "draft a reminder"): shown in full, one click to ask for sending.
export function draftCard(draft, onSend) {
  const first = (draft.invoice_numbers || [])[0];
  return h("article", { class: "card draft", "aria-label": "Draft email" },
    h("h3", {}, `Draft (${draft.tone.replace(/_/g, " ")})`),
    h("dl", { class: "facts" },
      field("To", (draft.to || []).join(", ")),
      draft.cc?.length ? field("Cc", draft.cc.join(", ")) : null,
      field("Subject", draft.subject),
      field("Invoices", invoices(draft.invoice_numbers)),
      h("dt", {}, "Body"), h("dd", {}, h("pre", { class: "body" }, draft.body))),
    first ? h("div", { class: "buttons" }, h("button", { type: "button", onclick: (e) => { e.currentTarget.disabled = true; onSend(first); } }, "Prepare to send (asks for approval)")) : null);
}
