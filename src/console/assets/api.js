// The public API, called with the key the user gave (kept for this tab only).

const STORE = "agentplane.key";

export function savedKey() {
  return sessionStorage.getItem(STORE) || "";
}

export function saveKey(key) {
  sessionStorage.setItem(STORE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORE);
}

/** An error answer of the API: its status, code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls `path` (under /api/v1) and answers the parsed JSON body. */
export async function api(path, { method = "GET", body, key = savedKey() } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  let json = null;
  try {
    json = await resp.json();
  } catch (e) {
    json = null;
  }
  if (!resp.ok) {
    const err = (json && json.error) || {};
    throw new ApiError(resp.status, err.code || "error", err.message || resp.statusText);
  }
  return json;
}

/** A path segment, percent-encoded (identifiers may hold `/` or `:`). */
export function seg(s) {
  return encodeURIComponent(s);
}

/** The `/ws` address of this server, with the key when there is one. */
export function wsUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const key = savedKey();
  const q = key ? `?token=${encodeURIComponent(key)}` : "";
  return `${proto}//${location.host}/ws${q}`;
}

/** Explains an error for a panel: what the key may not see, or why it failed. */
export function explain(err) {
  if (err instanceof ApiError && err.status === 403) {
    return `This key may not see this (${err.message}).`;
  }
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
