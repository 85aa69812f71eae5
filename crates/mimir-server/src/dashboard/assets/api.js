// Talking to the orchestrator: JSON reads with the API token when one is
// configured (asked for once, kept for the tab), and the live stream of
// seconds, read with fetch so the token travels in a header, not the URL.

const TOKEN_KEY = "mimir.apiToken";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let asking = null;

/** An error answer of the API, with its code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** Shows the token dialog until the user signs in; one dialog for all callers. */
function askToken(rejected) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").textContent = rejected ? "That token was not accepted." : "";
  // Escape would close the dialog with every request still waiting on it.
  dialog.addEventListener("cancel", (event) => event.preventDefault(), { once: true });
  asking = new Promise((resolve) => {
    form.addEventListener("submit", () => {
      token = input.value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = "";
      asking = null;
      resolve();
    }, { once: true });
  });
  dialog.showModal();
  input.focus();
  return asking;
}

async function request(method, path, { body, text = false } = {}) {
  for (;;) {
    const sentWith = token;
    const response = await fetch(path, {
      method,
      // The orchestrator takes every change as JSON, with or without a body.
      headers: headers(method === "GET" ? {} : { "Content-Type": "application/json" }),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (response.status === 401) {
      // A token entered since this request left is tried before asking again.
      if (token === sentWith) await askToken(Boolean(token));
      continue;
    }
    if (!response.ok) {
      let error = { code: "http_" + response.status, message: response.statusText };
      try {
        error = (await response.json()).error || error;
      } catch (_) { /* not JSON */ }
      throw new ApiError(response.status, error.code, error.message);
    }
    return text ? response.text() : response.json();
  }
}

/** GET a JSON document. */
export const get = (path) => request("GET", path);
/** GET a text document. */
export const getText = (path) => request("GET", path, { text: true });
/** POST a JSON body. */
export const post = (path, body = {}) => request("POST", path, { body });

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * Follows `/api/dashboard/stream`, calling `on(event, data)` for each message
 * and `status(state)` with "live", "reconnecting" or "signed out"; reconnects
 * with backoff. Returns a function that stops it.
 */
export function follow(on, status) {
  const controller = new AbortController();
  let delay = 1000;
  let reconnected = false;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const response = await fetch("/api/dashboard/stream", { headers: headers(), signal: controller.signal });
        if (response.status === 401) {
          status("signed out");
          await askToken(Boolean(token));
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
        status("live");
        let first = true;
        await readEvents(response.body, (event, data) => {
          // The backoff resets only once the stream delivers, so a server
          // that accepts and closes at once (shutting down) is not hammered.
          if (first) {
            first = false;
            delay = 1000;
            // Seconds missed while away are fetched again by the pages.
            if (reconnected) on("resync", "");
            reconnected = true;
          }
          on(event, data);
        });
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      status("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
  return () => controller.abort();
}

/** Reads a server-sent event stream until it ends. */
async function readEvents(body, on) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    // Line ends may be CRLF or CR; a CR at the very end may be half of a CRLF.
    buffer = (buffer + value).replace(/\r\n|\r(?!$)/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      const text = data.join("\n");
      let parsed = text;
      try {
        parsed = JSON.parse(text);
      } catch (_) { /* plain text */ }
      on(event, parsed);
    }
  }
}
