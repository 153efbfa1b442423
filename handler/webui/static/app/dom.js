// Small DOM helpers: elements are built with h(), never from HTML strings,
// so nothing the API returns is ever parsed as markup.

// h("button", {class: "btn", onclick: fn, disabled: true}, "Save")
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// setText changes a node's text only when it differs, so a refresh that
// brings the same data does not touch the DOM (no flicker, no lost focus).
export function setText(el, text) {
  text = text ?? "";
  if (el.textContent !== text) el.textContent = text;
}

let uid = 0;
export function newId(prefix) { uid += 1; return `${prefix}-${uid}`; }

// field() builds a labelled input with a slot for its error. name is the
// problem+json field it answers to (dotted, as the API names it).
export function field({ label, name, input, hint }) {
  const id = input.id || newId("f");
  input.id = id;
  const err = h("p", { class: "field-error", id: id + "-error", "aria-live": "polite" });
  const describedBy = [err.id];
  let hintEl = null;
  if (hint) {
    hintEl = h("p", { class: "hint", id: id + "-hint" }, hint);
    describedBy.push(hintEl.id);
  }
  input.setAttribute("aria-describedby", describedBy.join(" "));
  if (name) input.dataset.field = name;
  const isCheck = input.type === "checkbox";
  const lab = h("label", { for: id }, label);
  return h("div", { class: isCheck ? "field check" : "field" }, isCheck ? [input, " ", lab] : [lab, input], hintEl, err);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "—";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function secondsUntil(iso) {
  if (!iso) return null;
  return (new Date(iso).getTime() - Date.now()) / 1000;
}

export function badge(text, kind) { return h("span", { class: "badge " + (kind || "neutral") }, text); }

// copyButton copies what get() returns with the clipboard API and says so.
export function copyButton(label, get, what) {
  const status = h("span", { class: "hint", role: "status", "aria-live": "polite" });
  const btn = h("button", {
    type: "button", class: "btn small", "aria-label": `${label} ${what}`.trim(),
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(get());
        status.textContent = "Copied.";
      } catch (e) {
        status.textContent = "Copying failed: " + (e && e.message ? e.message : e);
      }
      setTimeout(() => { status.textContent = ""; }, 4000);
    },
  }, label);
  return h("span", { class: "row" }, btn, status);
}
