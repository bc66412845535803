// The HTTP API: bearer token from the browser session, errors turned into sentences a rep can act on.
const TOKEN_KEY = "lumo.token";
const BOOK_KEY = "lumo.rep";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  get rep() { return sessionStorage.getItem(BOOK_KEY) || ""; },
  set rep(value) {
    if (value) sessionStorage.setItem(BOOK_KEY, value);
    else sessionStorage.removeItem(BOOK_KEY);
  },
};

let onSignedOut = () => {};
export function whenSignedOut(handler) { onSignedOut = handler; }

function explain(status, body) {
  const said = body && typeof body.error === "string" ? body.error : "";
  if (status === 401) return `Your sign-in is no longer valid (${said || "unauthorized"}). Please sign in again.`;
  if (status === 404) return said ? said.charAt(0).toUpperCase() + said.slice(1) + "." : "Not found.";
  if (status === 413) return "That message is too long to send.";
  if (status >= 500) return "Lumo had a problem on its side; please try again in a moment.";
  return said ? said.charAt(0).toUpperCase() + said.slice(1) + "." : `The request failed (HTTP ${status}).`;
}

async function send(method, path, body, { auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError("Lumo cannot be reached. Check your connection, or that `lumo serve` is running.", 0);
  }
  return response;
}

async function parse(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401) onSignedOut(explain(401, body));
    throw new ApiError(explain(response.status, body), response.status);
  }
  return body;
}

export async function get(path, params = {}, { book = false } = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => query.append(k, x));
    else if (v !== "" && v !== null && v !== undefined && v !== false) query.set(k, v);
  }
  if (book && session.rep) query.set("rep", session.rep);
  const qs = query.toString();
  return parse(await send("GET", qs ? `${path}?${qs}` : path));
}

export async function post(path, body, options) {
  return parse(await send("POST", path, body, options));
}

// POST /v1/chat/stream: calls onEvent(name, data) for each Server-Sent Event until the stream ends.
export async function stream(path, body, onEvent) {
  const response = await send("POST", path, body);
  if (!response.ok) return parse(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
    if (done) break;
  }
  return null;
}
