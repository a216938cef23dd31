// Building the page. Every value from the server goes in as text (a text
// node or an attribute), never as HTML: no innerHTML anywhere, so a key named
// `<img src=x onerror=alert(1)>` shows those characters and runs nothing.

/**
 * An element: `h("button", {type: "button", on: {click}}, "Revoke")`.
 * Attributes are set with setAttribute (`false`, `null` and `undefined` skip
 * one); `on` adds listeners; children are nodes or strings (as text), and
 * arrays of them; `null` and `false` children are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "on") {
      for (const [event, listener] of Object.entries(value)) element.addEventListener(event, listener);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false && value !== null && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.append(child);
    else if (child !== null && child !== false && child !== undefined) parent.append(document.createTextNode(String(child)));
  }
}

/** Replaces everything in `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let ids = 0;
/** An id unique in the page, to tie a label or a heading to what it names. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A label and its field, tied by id so the field's accessible name is the label. */
export function field(label, control, hint) {
  const id = control.id || uid("field");
  control.id = id;
  const hintNode = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintNode);
}

/** A time from the server (RFC 3339) as `2026-12-03 10:15 UTC`; `null` as "—" or `none`. */
export function when(value, none = "—") {
  if (!value) return none;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/**
 * A modal dialog named by its heading. `build(close)` gives its content;
 * `onClose` runs however it closes (a button, Escape). Each dialog has its own
 * alert, as the page behind a modal dialog is inert. Returns `{dialog,
 * close, alert}`; the dialog is removed from the page once closed.
 */
export function dialog(title, build, onClose) {
  const headingId = uid("dialog");
  const alert = h("div", { role: "alert", class: "alert", hidden: true });
  const element = h("dialog", { "aria-labelledby": headingId });
  const close = () => element.close();
  element.addEventListener("close", () => {
    element.remove();
    if (onClose) onClose();
  });
  fill(element, h("h2", { id: headingId }, title), alert, build(close));
  document.body.append(element);
  element.showModal();
  return { dialog: element, close, alert: (message) => say(alert, message) };
}

/** Shows `message` in an alert element, or hides it when `message` is empty. */
export function say(alert, message) {
  alert.textContent = message || "";
  alert.hidden = !message;
}

/**
 * A dialog holding a form: `fields`, then `button` (its submit) beside
 * Cancel. `submit()` runs when the form is submitted, by the button or Enter.
 */
export function formDialog(title, fields, button, submit) {
  return dialog(title, (close) => {
    const form = h("form", {}, fields,
      h("div", { class: "actions" }, button, h("button", { type: "button", on: { click: close } }, "Cancel")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    return form;
  });
}
