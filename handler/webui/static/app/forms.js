import { describe } from "./api.js";
import { setText } from "./dom.js";

// clearErrors removes the errors shown in a form or panel.
export function clearErrors(root, alertEl) {
  for (const el of root.querySelectorAll("[aria-invalid=true]")) el.removeAttribute("aria-invalid");
  for (const el of root.querySelectorAll(".field-error")) el.textContent = "";
  if (alertEl) { alertEl.textContent = ""; alertEl.className = "alert"; }
}

// showError puts an API error where it belongs: at the input whose
// data-field is the problem's field (or the nearest enclosing field, e.g.
// members for members[3].userId), else in the panel's alert.
export function showError(root, alertEl, err) {
  clearErrors(root, alertEl);
  const text = describe(err);
  const input = err && err.field ? inputFor(root, err.field) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const slot = document.getElementById(input.id + "-error");
    if (slot) setText(slot, text);
    input.focus();
    if (alertEl) say(alertEl, "error", `Not saved: ${err.field}: ${text}`);
    return;
  }
  if (alertEl) say(alertEl, "error", text);
}

function inputFor(root, field) {
  let name = field;
  for (;;) {
    const el = root.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (el) return el;
    const cut = Math.max(name.lastIndexOf("."), name.lastIndexOf("["));
    if (cut <= 0) return null;
    name = name.slice(0, cut);
  }
}

export function say(alertEl, kind, text) {
  alertEl.className = "alert " + kind;
  alertEl.setAttribute("role", kind === "error" ? "alert" : "status");
  setText(alertEl, text);
}
