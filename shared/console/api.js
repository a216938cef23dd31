// Calls to the service, on the origin that served the page. The bearer
// token lives in this module's memory only: never in a cookie, localStorage
// or sessionStorage, so a reload means signing in again, and no other page
// can make the browser send it (no cookies, hence no CSRF).

/** What a failed call tells the user: the server's description, or why there was none. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The service's root: the page is `<root>/console/` or `<root>/console/portal`,
 * so the same page works at a server's top and behind an API Gateway stage.
 */
const root = location.pathname.replace(/\/console(\/.*)?$/, "");

let token = null;
let expiresAt = 0;

/** Whether a token is held and not yet expired. */
export function signedIn() {
  return token !== null && Date.now() < expiresAt;
}

/** Drops the token (after sign-out, or when the server refused it). */
export function forget() {
  token = null;
  expiresAt = 0;
}

/** Milliseconds until the token expires. */
export function remaining() {
  return Math.max(expiresAt - Date.now(), 0);
}

function hold(answer) {
  token = answer.access_token;
  expiresAt = Date.now() + answer.expires_in * 1000;
}

/**
 * One call: JSON in and out. A refusal throws an ApiError with the server's
 * description; a network failure or an answer that is not the service's JSON
 * throws one too, so that nothing fails silently.
 */
export async function call(method, path, body, { auth = true } = {}) {
  const headers = { accept: "application/json" };
  if (auth && token) headers.authorization = `Bearer ${token}`;
  // A PATCH is a JSON merge patch (RFC 7396): null clears a field.
  if (body !== undefined) headers["content-type"] = method === "PATCH" ? "application/merge-patch+json" : "application/json";
  let response;
  try {
    response = await fetch(root + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, "network", "The service could not be reached. Check your connection and try again.");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // Not JSON: described below by its status.
  }
  if (response.ok && answer !== null) return answer;
  if (response.status === 503 || response.status === 429) {
    const after = response.headers.get("retry-after");
    throw new ApiError(response.status, "unavailable",
      `The service is busy or unavailable; try again${after ? ` in ${after} s` : " shortly"}.`);
  }
  const code = answer && typeof answer.error === "string" ? answer.error : "error";
  const description = answer && typeof answer.error_description === "string"
    ? answer.error_description
    : `The service answered ${response.status}.`;
  throw new ApiError(response.status, code, description);
}

/** A random session id for this sign-in: `console-<32 hex digits>`. */
function consoleSession() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Trades a root key for a token in a session of this console's own. */
export async function signIn(apiKey) {
  hold(await call("POST", "/auth/login", { api_key: apiKey, session_id: consoleSession() }, { auth: false }));
}

/** Trades a portal link's code for a portal token; answers the portal's terms. */
export async function exchange(code) {
  const answer = await call("POST", "/admin/v1/portal-sessions/exchange", { code }, { auth: false });
  hold(answer);
  return answer;
}

/** Revokes this sign-in's session (or ends the portal session), then forgets the token. */
export async function signOut() {
  try {
    if (signedIn()) await call("POST", "/auth/revoke");
  } finally {
    forget();
  }
}

/** A query string of the given parameters, skipping empty ones. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}
