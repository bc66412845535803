// Today's list, overdue and stale lists with filters, the invoice page and the account pages.
import { get, session } from "/static/js/api.js";
import { chatView, itemsList } from "/static/js/chat.js";
import { accountHref, clear, errorBox, h, invoiceLink, loading, markNav, money, when } from "/static/js/dom.js";

const BUCKETS = ["1-30", "31-60", "61-90", "90+"];

function bookNote() {
  return session.rep ? h("p", { class: "hint" }, `Showing the book of ${session.rep}.`) : null;
}

async function show(main, title, load) {
  const body = h("div", { "aria-busy": "true" }, loading());
  clear(main, h("h1", {}, title), bookNote(), body);
  try {
    const content = await load();
    clear(body, content);
  } catch (err) {
    clear(body, errorBox(err.message));
  } finally {
    body.removeAttribute("aria-busy");
  }
}

export function draftInChat(main, number) {
  history.pushState(null, "", "#/chat");
  markNav();
  return chatView(main, null, { ask: `send the reminder for ${number}` });
}

export function todayPage(main) {
  return show(main, "Today", async () => {
    const { items } = await get("/v1/priorities", { limit: 20 }, { book: true });
    if (!items.length) return h("p", {}, "Nothing needs you today.");
    return [h("p", { class: "hint" }, "Your work for today, most important first. “Draft it” prepares the reminder; nothing is sent until you approve it."), itemsList(items, (number) => draftInChat(main, number))];
  });
}

function table(headers, rows) {
  return h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Results" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))), h("tbody", {}, rows)));
}

function filtersForm(values, onChange) {
  const account = h("input", { id: "f-account", name: "account", value: values.account || "", placeholder: "name or id" });
  const bucket = h("select", { id: "f-bucket", name: "bucket" }, h("option", { value: "" }, "any"), BUCKETS.map((b) => h("option", { value: b, selected: values.bucket === b }, `${b} days`)));
  const currency = h("input", { id: "f-currency", name: "currency", value: values.currency || "", maxlength: 3, size: 4, placeholder: "EUR" });
  const form = h("form", { class: "filters", "aria-label": "Filters" },
    h("div", {}, h("label", { for: "f-account" }, "Account"), account),
    h("div", {}, h("label", { for: "f-bucket" }, "Days overdue"), bucket),
    h("div", {}, h("label", { for: "f-currency" }, "Currency"), currency),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onChange({ account: account.value.trim(), bucket: bucket.value, currency: currency.value.trim().toUpperCase() });
  });
  return form;
}

function invoiceRows(items) {
  return items.map((i) => h("tr", {},
    h("td", {}, invoiceLink(i.invoice_number)), h("td", {}, i.account), h("td", { class: "num" }, money(i.balance, i.currency)),
    h("td", {}, i.due_date), h("td", { class: "num" }, i.days_overdue), h("td", {}, i.status.replace(/_/g, " "))));
}

export async function overduePage(main, values = {}, page = 1) {
  clear(main, h("h1", {}, "Overdue invoices"), bookNote(), filtersForm(values, (v) => overduePage(main, v, 1)));
  const results = h("div", { "aria-busy": "true" }, loading());
  main.append(results);
  try {
    const data = await get("/v1/invoices", { overdue: "true", ...values, page, page_size: 25 }, { book: true });
    const pages = Math.max(1, Math.ceil(data.total / data.page_size));
    clear(results,
      h("p", { role: "status" }, `${data.total} overdue invoice${data.total === 1 ? "" : "s"}`),
      data.items.length ? table(["Invoice", "Account", "Balance", "Due", "Days", "Status"], invoiceRows(data.items)) : null,
      pages > 1 ? h("nav", { class: "pager", "aria-label": "Pages" },
        h("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: () => overduePage(main, values, page - 1) }, "Previous"),
        h("span", {}, `Page ${page} of ${pages}`),
        h("button", { type: "button", class: "secondary", disabled: page >= pages, onclick: () => overduePage(main, values, page + 1) }, "Next")) : null);
  } catch (err) {
    clear(results, errorBox(err.message));
  } finally {
    results.removeAttribute("aria-busy");
  }
}

export async function stalePage(main, values = {}) {
  clear(main, h("h1", {}, "Stale statuses"), bookNote(), filtersForm(values, (v) => stalePage(main, v)));
  const results = h("div", { "aria-busy": "true" }, loading());
  main.append(results);
  try {
    // The findings say what is stale; the invoice search applies the filters to the same stale set.
    const [{ items: findings }, matching] = await Promise.all([
      get("/v1/stale", {}, { book: true }),
      get("/v1/invoices", { stale: "true", ...values, page_size: 500 }, { book: true }),
    ]);
    const shown = new Map(matching.items.map((i) => [i.invoice_number, i]));
    const rows = findings.filter((f) => shown.has(f.invoice_number));
    clear(results,
      h("p", { role: "status" }, `${rows.length} stale finding${rows.length === 1 ? "" : "s"}`),
      rows.length ? table(["Invoice", "Account", "Balance", "What is stale", "Fix"], rows.map((f) => {
        const i = shown.get(f.invoice_number);
        return h("tr", {}, h("td", {}, invoiceLink(f.invoice_number)), h("td", {}, i.account), h("td", { class: "num" }, money(i.balance, i.currency)),
          h("td", {}, h("strong", {}, f.kind.replace(/_/g, " ")), h("br"), f.evidence), h("td", {}, f.fix));
      })) : null);
  } catch (err) {
    clear(results, errorBox(err.message));
  } finally {
    results.removeAttribute("aria-busy");
  }
}

const dl = (pairs) => h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));

export function invoicePage(main, number) {
  return show(main, `Invoice ${number}`, async () => {
    const inv = await get(`/v1/invoices/${encodeURIComponent(number)}`, {}, { book: true });
    return [
      h("section", { class: "card", "aria-label": "Facts" },
        dl([
          ["Account", inv.account],
          ["Status", inv.status.replace(/_/g, " ")],
          ["Amount", money(inv.amount, inv.currency)],
          ["Paid", money(inv.amount_paid, inv.currency)],
          ["Balance", money(inv.balance, inv.currency)],
          ["Issued", inv.issue_date],
          ["Due", inv.due_date],
          ["Days overdue", inv.days_overdue > 0 ? `${inv.days_overdue} (${inv.bucket})` : "not overdue"],
          ["Promise to pay", inv.promise_to_pay_date || "none"],
          ["Dispute", inv.dispute_reason || "none"],
          ["Payment link", inv.payment_url ? h("a", { href: inv.payment_url, rel: "noopener noreferrer", target: "_blank" }, inv.payment_url) : null],
          ["Contacts", inv.contacts.map((c) => `${c.name} <${c.email}>${c.do_not_contact ? " (do not contact)" : ""}`).join(", ") || "none"],
        ]),
        h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => draftInChat(main, inv.invoice_number) }, "Draft a reminder"))),
      inv.stale.length ? h("section", { class: "card warn", "aria-label": "Stale status" }, h("h2", {}, "Stale status"),
        h("ul", {}, inv.stale.map((f) => h("li", {}, h("strong", {}, f.kind.replace(/_/g, " ")), `: ${f.evidence} Fix: ${f.fix}`)))) : null,
      h("section", { "aria-label": "Payments" }, h("h2", {}, "Payments"),
        inv.payments.length ? table(["Paid at", "Amount"], inv.payments.map((p) => h("tr", {}, h("td", {}, when(p.paid_at)), h("td", { class: "num" }, money(p.amount, inv.currency))))) : h("p", {}, "No payments yet.")),
      h("section", { "aria-label": "History" }, h("h2", {}, "Status history and activities"),
        inv.history.length ? h("ol", { class: "history" }, inv.history.map((e) => h("li", {},
          h("time", { datetime: e.at }, when(e.at)), " ", h("strong", {}, e.kind.replace(/_/g, " ")),
          e.from || e.to ? ` ${e.from || "?"} → ${e.to || "?"}` : "", e.text ? `: ${e.text}` : ""))) : h("p", {}, "No activity recorded.")),
    ];
  });
}

function healthSummary(a) {
  return [
    h("p", {}, h("span", { class: `grade ${a.grade}` }, a.grade), ` score ${a.score}`),
    h("ul", { class: "reasons" }, a.reasons.map((r) => h("li", {}, r))),
  ];
}

export function accountsPage(main) {
  return show(main, "Accounts", async () => {
    const data = await get("/v1/accounts", { limit: 50 }, { book: true });
    const risk = data.revenue_at_risk || {};
    return [
      risk.base_currency ? h("p", {}, "Revenue at risk: ", h("strong", {}, money(risk.total, risk.base_currency))) : null,
      h("ul", { class: "accounts" }, data.accounts.map((a) => h("li", { class: "card" },
        h("h2", {}, h("a", { href: accountHref(a.account_id) }, a.account)), ...healthSummary(a)))),
    ];
  });
}

export function accountPage(main, id) {
  return show(main, "Account", async () => {
    const [{ accounts }, open] = await Promise.all([
      get("/v1/accounts", { account: id, limit: 50 }, { book: true }),
      get("/v1/invoices", { account: id, status: ["sent", "viewed", "partially_paid", "overdue", "disputed"], page_size: 200 }, { book: true }),
    ]);
    const a = accounts.find((x) => x.account_id === id);
    if (!a) throw new Error(`Account ${id} not found.`);
    const rows = open.items.filter((i) => i.account === a.account); // the search also matches names containing the id
    main.querySelector("h1").textContent = a.account;
    return [
      h("section", { class: "card", "aria-label": "Health" }, h("h2", {}, "Health"), ...healthSummary(a),
        dl([
          ["Open balance", a.open_balance.map((b) => money(b.amount, b.currency)).join(", ") || "none"],
          ["Days sales outstanding", a.dso_days ?? "n/a"],
          ["Average days late", a.avg_days_late ?? "n/a"],
          ["Disputes", a.disputes], ["Stale statuses", a.stale_statuses], ["Broken promises", a.broken_promises],
        ])),
      h("section", { "aria-label": "Overdue by bucket" }, h("h2", {}, `Overdue by bucket (${a.base_currency})`),
        table(["Bucket", "Overdue"], Object.entries(a.overdue_by_bucket).map(([b, amount]) => h("tr", {}, h("td", {}, b), h("td", { class: "num" }, money(amount, a.base_currency)))))),
      h("section", { "aria-label": "Open invoices" }, h("h2", {}, "Open invoices"),
        rows.length ? table(["Invoice", "Account", "Balance", "Due", "Days", "Status"], invoiceRows(rows)) : h("p", {}, "No open invoices.")),
    ];
  });
}
