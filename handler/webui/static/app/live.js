import { describe } from "./api.js";
import { h, setText } from "./dom.js";

export const REFRESH_MS = 5000;

// poll runs load now and then every 5 s until signal aborts; a run never
// overlaps the previous one, and a hidden tab is not polled. freshness (if
// given) says how old the data shown is.
export function poll(signal, load, freshness) {
  let timer = 0;
  const run = async () => {
    if (signal.aborted) return;
    if (!document.hidden) {
      try {
        await load();
        freshness?.ok();
      } catch (e) {
        if (signal.aborted || e.name === "AbortError") return;
        freshness?.failed(e);
      }
    }
    if (!signal.aborted) timer = setTimeout(run, REFRESH_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  run();
}

// Freshness is the "updated 3 s ago" line of a live table. After a failed
// refresh the old data stays and the line says why it is not new.
export class Freshness {
  constructor(signal, label = "Updated") {
    this.label = label;
    this.at = 0;
    this.error = "";
    this.el = h("p", { class: "age", role: "status", "aria-live": "off" }, "Loading…");
    const tick = setInterval(() => this.render(), 1000);
    signal.addEventListener("abort", () => clearInterval(tick));
  }
  ok() { this.at = Date.now(); this.error = ""; this.render(); }
  failed(e) { this.error = describe(e); this.render(); }
  render() {
    const age = this.at ? Math.round((Date.now() - this.at) / 1000) : null;
    let text = age === null ? "Not loaded yet" : `${this.label} ${age} s ago`;
    if (this.error) text += ` — last refresh failed: ${this.error}`;
    setText(this.el, text);
    this.el.classList.toggle("stale", !!this.error || (age !== null && age > 15));
  }
}

// syncRows makes tbody show one row per item, in order, reusing the row of
// the same key: render(tr, item) updates a row in place (with setCells), so
// a refresh changes only what changed.
export function syncRows(tbody, items, keyOf, render) {
  const old = new Map();
  for (const tr of tbody.rows) old.set(tr.dataset.key, tr);
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let tr = old.get(key);
    if (tr) old.delete(key);
    else {
      tr = document.createElement("tr");
      tr.dataset.key = key;
    }
    render(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of old.values()) tr.remove();
}

// setCells fills a row's cells: a string sets the text; [sig, build] puts
// build()'s node in the cell, built again only when sig changed (buttons
// keep their focus across refreshes). labels name the cells on narrow
// screens.
export function setCells(tr, labels, values) {
  values.forEach((v, i) => {
    let td = tr.cells[i];
    if (!td) {
      td = tr.insertCell();
      td.dataset.label = labels[i];
    }
    if (Array.isArray(v)) {
      const [sig, build] = v;
      if (td.dataset.sig !== sig) {
        td.dataset.sig = sig;
        td.replaceChildren(build());
      }
    } else setText(td, v ?? "");
  });
}

// table builds a live table; name (if given) is its data-table, for tests
// and styles to find it.
export function table(labels, { caption, numeric = [], name } = {}) {
  const tbody = h("tbody");
  const t = h("table", { class: "cards", dataset: name ? { table: name } : {} },
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, labels.map((l, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, l)))),
    tbody);
  return { el: h("div", { class: "table-wrap" }, t), tbody, labels };
}
