// The console: the provider's operators (signed in with a root key) and, at
// /console/portal, a provider's customer (signed in by a one-time link) manage
// API keys through the management API. Screens are rebuilt from the server's
// answers; nothing is cached beyond the page's memory.

import * as api from "./api.js";
import { dialog, field, fill, formDialog, h, say, uid, when } from "./dom.js";

const portalPage = location.pathname.endsWith("/console/portal");
/** Where a portal customer goes for a new link; not a secret, so it may outlive a reload. */
const RETURN_KEY = "portal-return-url";

const state = {
  /** The exchange's answer in the portal (owner, allowed_scopes, return_url, max_keys); null for an operator. */
  portal: null,
  /** The operator's owner filter. */
  owner: "",
};

const header = h("header", { class: "bar" });
const main = document.getElementById("app");
const pageAlert = h("div", { role: "alert", class: "alert", hidden: true });
document.body.prepend(header);
let expiry = null;

/** An error for the user: on the page, or in the open dialog when one is given. */
function failed(error, alert = (message) => say(pageAlert, message)) {
  if (error instanceof api.ApiError && error.status === 401 && error.code !== "invalid_client") {
    signedOut(portalPage ? "Your portal session has ended." : "Your sign-in has expired; sign in again.");
    return;
  }
  alert(error.message || String(error));
}

/** Runs `work`, showing what goes wrong instead of failing silently. */
async function attempt(work, alert) {
  try {
    await work();
  } catch (error) {
    failed(error, alert);
  }
}

/** Replaces the screen: its content, and the header for who is signed in. */
function screen(...content) {
  say(pageAlert, "");
  // Removed, not closed: a dialog's close handler (say, reloading the list)
  // must not run over the new screen.
  document.querySelectorAll("dialog").forEach((d) => d.remove());
  fill(main, pageAlert, ...content);
  const who = state.portal ? `Keys of ${state.portal.owner}` : "Operator console";
  fill(header, h("span", { class: "brand" }, "API keys"),
    api.signedIn() ? [h("span", { class: "who" }, who),
      h("button", { type: "button", on: { click: () => attempt(signOut) } }, "Sign out")] : null);
}

function watchExpiry() {
  clearTimeout(expiry);
  // When the token runs out, the page says so rather than failing the next click.
  expiry = setTimeout(() => {
    api.forget();
    signedOut(portalPage ? "Your portal session has expired." : "Your sign-in has expired; sign in again.");
  }, api.remaining());
}

async function signOut() {
  clearTimeout(expiry);
  try {
    await api.signOut();
  } finally {
    signedOut("You have signed out.");
  }
}

/** After sign-out or expiry: the sign-in form, or in the portal the way back for a new link. */
function signedOut(message) {
  clearTimeout(expiry);
  api.forget();
  state.portal = null;
  if (portalPage) linkSpent(message);
  else signInScreen(message);
}

// ---- Operator sign-in ----------------------------------------------------

function signInScreen(message) {
  const key = h("input", { type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Sign in with a root key: an API key holding admin:keys:read, and admin:keys:write to change keys."),
    field("API key", key), button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    const value = key.value;
    // The key goes once to /auth/login and is then dropped from the page.
    key.value = "";
    try {
      await api.signIn(value.trim());
      watchExpiry();
      await keysScreen();
    } catch (error) {
      say(pageAlert, error.status === 401 ? "That key was not accepted: it is unknown, revoked or expired." : error.message);
      key.focus();
    } finally {
      button.disabled = false;
    }
  });
  screen(form);
  if (message) say(pageAlert, message);
  key.focus();
}

// ---- Customer portal -----------------------------------------------------

async function portalStart() {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  // The code leaves the address bar and this history entry before anything else.
  history.replaceState(null, "", location.pathname);
  if (!code) {
    linkSpent("This portal link has been used. Links work once, for a few minutes.");
    return;
  }
  try {
    const answer = await api.exchange(code);
    state.portal = answer;
    if (answer.return_url) sessionStorage.setItem(RETURN_KEY, answer.return_url);
    else sessionStorage.removeItem(RETURN_KEY);
    watchExpiry();
    await keysScreen();
  } catch (error) {
    linkSpent(error.code === "invalid_grant"
      ? "This portal link has been used or has expired. Links work once, for a few minutes."
      : error.message);
  }
}

function linkSpent(message) {
  const back = sessionStorage.getItem(RETURN_KEY);
  screen(h("section", { class: "card" },
    h("h1", {}, "This link has been used"),
    h("p", {}, message),
    back && /^https?:\/\//.test(back)
      ? h("p", {}, h("a", { href: back, rel: "noreferrer" }, "Get a new link"))
      : h("p", {}, "Go back to the site that sent you here for a new link.")));
}

// ---- Keys ------------------------------------------------------------------

const COLUMNS = ["Name", "Key ID", "Owner", "Scopes", "Status", "Created", "Last used", "Expires"];

async function keysScreen() {
  const operator = !state.portal;
  const table = h("table", {});
  const more = h("div", {});
  const section = h("section", {},
    h("div", { class: "row-between" },
      h("h1", {}, "API keys"),
      h("button", { type: "button", class: "primary", on: { click: () => createDialog() } }, "Create key")),
    operator ? ownerSearch() : h("p", {}, `Keys may hold ${scopeList(state.portal.allowed_scopes).join(", ")}; at most ${state.portal.max_keys} live at once.`),
    h("div", { class: "scroll" }, table),
    more);
  screen(section);
  const columns = COLUMNS.filter((c) => operator || c !== "Owner");
  fill(table, h("caption", { class: "visually-hidden" }, operator && state.owner ? `Keys of ${state.owner}` : "Keys"),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))));
  const body = h("tbody", {});
  table.append(body);
  await loadKeys(body, more, columns, null);
}

function ownerSearch() {
  const input = h("input", { type: "search", value: state.owner, autocomplete: "off" });
  const form = h("form", { class: "search", role: "search" }, field("Owner", input),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.owner = input.value.trim();
    attempt(keysScreen);
  });
  return form;
}

async function loadKeys(body, more, columns, cursor) {
  const page = await api.call("GET", `/admin/v1/keys${api.query({ owner: state.portal ? "" : state.owner, limit: "50", cursor })}`);
  if (!cursor && page.keys.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: columns.length }, state.owner ? `No keys of ${state.owner}.` : "No keys yet.")));
  }
  for (const key of page.keys) body.append(keyRow(key, columns));
  fill(more, page.next_cursor
    ? h("button", { type: "button", on: { click: () => attempt(() => loadKeys(body, more, columns, page.next_cursor)) } }, "Load more")
    : null);
}

function keyRow(key, columns) {
  const cells = {
    Name: h("button", { type: "button", class: "link", on: { click: () => attempt(() => detailScreen(key.key_id)) } }, key.name),
    "Key ID": h("code", {}, key.key_id),
    Owner: key.owner || "—",
    Scopes: key.scopes || "—",
    Status: status(key.status),
    Created: when(key.created_at),
    "Last used": when(key.last_used_at, "never"),
    Expires: when(key.expires_at, "never"),
  };
  return h("tr", {}, columns.map((c, i) => (i === 0 ? h("th", { scope: "row" }, cells[c]) : h("td", {}, cells[c]))));
}

function status(value) {
  return h("span", { class: `status ${value}` }, value);
}

function scopeList(scopes) {
  return (Array.isArray(scopes) ? scopes : String(scopes || "").split(" ")).filter(Boolean);
}

// ---- Create ------------------------------------------------------------------

const EXPIRY = [["Never", 0], ["In 1 day", 86400], ["In 30 days", 2592000], ["In 90 days", 7776000], ["In 1 year", 31536000]];

function createDialog() {
  const operator = !state.portal;
  const name = h("input", { type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const scopesText = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
  const boxes = operator ? [] : scopeList(state.portal.allowed_scopes).map((s) => [s, h("input", { type: "checkbox", value: s })]);
  const expires = h("select", {}, EXPIRY.map(([label, seconds]) => h("option", { value: seconds }, label)));
  const owner = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
  const meta = h("textarea", { rows: 3, spellcheck: "false" });
  const create = h("button", { type: "submit", class: "primary" }, "Create");
  const scopesId = uid("scopes");
  const { close, alert } = formDialog("Create key", [
    field("Name", name),
    operator
      ? field("Scopes", scopesText, "Space-separated, as in “read write”.")
      : h("fieldset", { "aria-labelledby": scopesId }, h("legend", { id: scopesId }, "Scopes"),
        boxes.map(([s, box]) => h("label", { class: "check" }, box, s))),
    field("Expires", expires),
    operator ? field("Owner", owner, "The customer this key belongs to (optional).") : null,
    operator ? field("Metadata", meta, "A JSON object returned on every verify (optional).") : null,
  ], create, submit);
  name.focus();

  async function submit() {
    const body = { name: name.value.trim() };
    body.scopes = operator ? scopesText.value.trim().split(/\s+/).filter(Boolean).join(" ")
      : boxes.filter(([, box]) => box.checked).map(([s]) => s).join(" ");
    if (!body.scopes) {
      alert("Choose at least one scope.");
      return;
    }
    const seconds = Number(expires.value);
    if (seconds > 0) body.expires_in = seconds;
    if (operator && owner.value.trim()) body.owner = owner.value.trim();
    if (operator && meta.value.trim()) {
      try {
        body.meta = JSON.parse(meta.value);
      } catch {
        alert("Metadata must be JSON, such as {\"plan\": \"pro\"}.");
        return;
      }
    }
    create.disabled = true;
    try {
      const answer = await api.call("POST", "/admin/v1/keys", body);
      close();
      showKeyOnce(answer.api_key, [], () => attempt(keysScreen));
    } catch (error) {
      if (error.code === "too_many_keys" && state.portal) {
        alert(`You hold at most ${state.portal.max_keys} live keys; revoke one before creating another.`);
      } else {
        failed(error, alert);
      }
    } finally {
      create.disabled = false;
    }
  }
}

/**
 * The new key, once. Closing the dialog (its button or Escape) removes it
 * from the page; nothing else holds it.
 */
function showKeyOnce(apiKey, notes, then) {
  const status = h("p", { role: "status", class: "hint" });
  const value = h("input", { type: "text", readonly: true, value: apiKey, "aria-label": "New API key", class: "secret", spellcheck: "false" });
  dialog("Copy your new key", (close) => h("div", {},
    h("p", { class: "warning" }, "Store this key now: it will not be shown again."),
    value,
    notes.map((n) => h("p", {}, n)),
    h("div", { class: "actions" },
      h("button", { type: "button", on: { click: () => copy(value, status) } }, "Copy"),
      h("button", { type: "button", class: "primary", on: { click: close } }, "I have stored it")),
    status), then);
  value.select();
}

async function copy(input, status) {
  try {
    await navigator.clipboard.writeText(input.value);
    say(status, "Copied to the clipboard.");
  } catch {
    input.select();
    say(status, "The browser refused the clipboard; the key is selected, copy it with Ctrl+C.");
  }
}

// ---- Detail --------------------------------------------------------------------

async function detailScreen(keyId) {
  const path = `/admin/v1/keys/${encodeURIComponent(keyId)}`;
  const key = await api.call("GET", path);
  const sessions = h("div", {});
  const activity = h("div", {});
  const active = key.status === "active";
  const facts = [
    ["Key ID", h("code", {}, key.key_id)],
    state.portal ? null : ["Owner", key.owner || "—"],
    ["Scopes", key.scopes],
    ["Status", status(key.status)],
    ["Created", when(key.created_at)],
    ["Last used", when(key.last_used_at, "never")],
    ["Expires", when(key.expires_at, "never")],
    key.previous_secret_valid_until ? ["Previous secret works until", when(key.previous_secret_valid_until)] : null,
    state.portal || key.meta === null ? null : ["Metadata", h("code", {}, JSON.stringify(key.meta))],
  ].filter(Boolean);
  screen(h("article", {},
    h("button", { type: "button", class: "link", on: { click: () => attempt(keysScreen) } }, "← Back to keys"),
    h("h1", {}, key.name),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    active ? h("div", { class: "actions" },
      state.portal ? null : h("button", { type: "button", on: { click: () => editDialog(key) } }, "Edit"),
      h("button", { type: "button", on: { click: () => rotateDialog(key) } }, "Rotate"),
      h("button", { type: "button", class: "danger", on: { click: () => revokeDialog(key) } }, "Revoke")) : null,
    h("section", {}, h("h2", {}, "Sessions"), sessions),
    h("section", {}, h("h2", {}, "Activity"), activity)));
  // A session revoked here shows in both sections.
  const refresh = () => Promise.all([loadSessions(key, sessions, refresh), loadActivity(key, activity)]);
  await refresh();
}

/** A section's own failure: shown in it, the rest of the page still usable. */
async function part(container, work) {
  try {
    await work();
  } catch (error) {
    failed(error, (message) => fill(container, h("p", { role: "alert", class: "alert" }, message)));
  }
}

function loadSessions(key, container, refresh) {
  const path = `/admin/v1/keys/${encodeURIComponent(key.key_id)}/sessions`;
  return part(container, async () => {
    const { sessions } = await api.call("GET", path);
    const note = h("p", { role: "status", class: "hint" });
    if (sessions.length === 0) {
      fill(container, h("p", {}, "No live sessions."), note);
      return;
    }
    fill(container,
      h("div", { class: "scroll" }, h("table", {},
        h("caption", { class: "visually-hidden" }, "Sessions"),
        h("thead", {}, h("tr", {}, ["Session", "Scope", "Issued", "Expires", "Action"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, sessions.map((s) => h("tr", {},
          h("th", { scope: "row" }, h("code", {}, s.session_id)),
          h("td", {}, s.scope),
          h("td", {}, when(s.issued_at)),
          h("td", {}, when(s.expires_at)),
          h("td", {}, h("button", {
            type: "button",
            on: { click: () => part(container, async () => {
              await api.call("POST", `${path}/${encodeURIComponent(s.session_id)}/revoke`);
              await refresh();
            }) },
          }, "Revoke session"))))))),
      h("div", { class: "actions" }, h("button", {
        type: "button",
        class: "danger",
        on: { click: () => part(container, async () => {
          await api.call("POST", `${path}/revoke`);
          await refresh();
        }) },
      }, "Revoke all sessions")),
      note);
  });
}

function loadActivity(key, container) {
  return part(container, async () => {
    const { events } = await api.call("GET", `/admin/v1/events${api.query({ key_id: key.key_id, limit: "50" })}`);
    if (events.length === 0) {
      fill(container, h("p", {}, "No activity yet."));
      return;
    }
    fill(container, h("div", { class: "scroll" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Activity"),
      h("thead", {}, h("tr", {}, ["Time", "Action", "By", "Changes"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, events.map((e) => h("tr", {},
        h("td", {}, when(e.time)),
        h("td", {}, e.action),
        h("td", {}, actor(e.actor)),
        h("td", {}, h("code", {}, changes(e.changes)))))))));
  });
}

/** Who acted: a key by its id, a portal session by its customer (its link id says nothing to a reader). */
function actor(who) {
  return who.kind === "portal" && who.owner ? `portal (${who.owner})` : `${who.kind} ${who.id}`;
}

/** `{"scopes": {"old": "a", "new": "b"}}` as `scopes: "a" → "b"`; times in seconds as dates. */
function changes(value) {
  if (!value || typeof value !== "object") return "";
  const shown = (name, v) => (typeof v === "number" && /_(at|until)$/.test(name) && v > 1e9 && v < 1e11
    ? when(new Date(v * 1000).toISOString())
    : JSON.stringify(v ?? null));
  return Object.entries(value).map(([name, change]) => {
    if (change && typeof change === "object" && ("old" in change || "new" in change)) {
      return `${name}: ${shown(name, change.old)} → ${shown(name, change.new)}`;
    }
    return `${name}: ${shown(name, change)}`;
  }).join("; ");
}

// ---- Edit (operators) ----------------------------------------------------------

/** Name, scopes and metadata as a merge patch of what changed; narrower scopes hold from the next verify. */
function editDialog(key) {
  const name = h("input", { type: "text", required: true, maxlength: 200, value: key.name, autocomplete: "off" });
  const scopes = h("input", { type: "text", value: key.scopes, autocomplete: "off", spellcheck: "false" });
  const meta = h("textarea", { rows: 3, spellcheck: "false" });
  meta.value = key.meta === null ? "" : JSON.stringify(key.meta);
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const { close, alert } = formDialog(`Edit ${key.name}`, [
    field("Name", name),
    field("Scopes", scopes, "Narrower scopes hold from the next verify of the key's tokens; wider ones only for new tokens."),
    field("Metadata", meta, "A JSON object; empty clears it."),
  ], save, submit);
  name.focus();

  async function submit() {
    const patch = {};
    if (name.value.trim() !== key.name) patch.name = name.value.trim();
    const newScopes = scopes.value.trim().split(/\s+/).filter(Boolean).join(" ");
    if (newScopes !== key.scopes) patch.scopes = newScopes;
    let newMeta = null;
    if (meta.value.trim()) {
      try {
        newMeta = JSON.parse(meta.value);
      } catch {
        alert("Metadata must be JSON, such as {\"plan\": \"pro\"}.");
        return;
      }
    }
    if (JSON.stringify(newMeta) !== JSON.stringify(key.meta)) patch.meta = newMeta;
    if (Object.keys(patch).length === 0) {
      close();
      return;
    }
    save.disabled = true;
    try {
      await api.call("PATCH", `/admin/v1/keys/${encodeURIComponent(key.key_id)}`, patch);
      close();
      await detailScreen(key.key_id);
    } catch (error) {
      failed(error, alert);
    } finally {
      save.disabled = false;
    }
  }
}

// ---- Rotate and revoke -------------------------------------------------------

const GRACE = [["At once", 0], ["1 hour", 3600], ["1 day", 86400], ["7 days", 604800]];

function rotateDialog(key) {
  const grace = h("select", {}, GRACE.map(([label, seconds]) => h("option", { value: seconds, selected: seconds === 86400 }, label)));
  const until = h("p", { "aria-live": "polite" });
  const explain = () => {
    const seconds = Number(grace.value);
    fill(until, seconds === 0
      ? "The old secret stops working at once."
      : `The old secret stops working on ${when(new Date(Date.now() + seconds * 1000).toISOString())}.`);
  };
  grace.addEventListener("change", explain);
  explain();
  const button = h("button", { type: "button", class: "primary" }, "Rotate key");
  const { close, alert } = dialog(`Rotate ${key.name}`, (close) => h("div", {},
    h("p", {}, "A new secret replaces this key's secret; the key id, scopes and owner stay."),
    field("Grace period", grace, "How long the old secret keeps working, for your deployments to switch."),
    until,
    h("div", { class: "actions" }, button, h("button", { type: "button", on: { click: close } }, "Cancel"))));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const answer = await api.call("POST", `/admin/v1/keys/${encodeURIComponent(key.key_id)}/rotate`,
        { grace_seconds: Number(grace.value) });
      close();
      const stops = answer.previous_secret_valid_until
        ? `The old secret works until ${when(answer.previous_secret_valid_until)}.`
        : "The old secret no longer works.";
      showKeyOnce(answer.api_key, [stops], () => attempt(() => detailScreen(key.key_id)));
    } catch (error) {
      failed(error, alert);
    } finally {
      button.disabled = false;
    }
  });
  grace.focus();
}

function revokeDialog(key) {
  const button = h("button", { type: "button", class: "danger" }, "Revoke key");
  const { close, alert } = dialog(`Revoke ${key.name}?`, (close) => h("div", {},
    h("p", {}, `Revoke the key “${key.name}” (${key.key_id})? Its tokens stop working at their next check. This cannot be undone.`),
    h("div", { class: "actions" }, button, h("button", { type: "button", on: { click: close } }, "Cancel"))));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api.call("POST", `/admin/v1/keys/${encodeURIComponent(key.key_id)}/revoke`);
      close();
      await detailScreen(key.key_id);
    } catch (error) {
      failed(error, alert);
    } finally {
      button.disabled = false;
    }
  });
  button.focus();
}

// ---- Start -------------------------------------------------------------------

if (portalPage) attempt(portalStart);
else signInScreen();
