// Page 5: outbound tasks by state, with cancel; event subscriptions
// (SPEC section 11) with their deliveries. Both refresh every 5 s.
import { call, describe, may, roleNames } from "../api.js";
import { h, clear, field, fmtTime, badge, setText } from "../dom.js";
import { say } from "../forms.js";
import { poll, Freshness, syncRows, setCells, table } from "../live.js";
import { listServices } from "../services-list.js";

const STATES = ["", "Scheduled", "Queued", "InProgress", "Completed", "Failed", "Cancelled", "Expired"];
const PAGES = 5; // at most 5 pages of 50 per refresh

export async function render(root, { signal }) {
  root.append(h("h1", {}, "Outbound tasks and events"));
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  root.append(alert);
  let list;
  try {
    list = await listServices(signal);
  } catch (e) {
    if (e.name !== "AbortError") say(alert, "error", describe(e));
    return;
  }
  root.append(tasksPanel(signal, list), subscriptionsPanel(signal));
}

function tasksPanel(signal, list) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const service = h("select", {}, list.services.map((s) => h("option", { value: s.id }, `${s.name || s.id} (${s.id})`)));
  const other = h("input", { type: "text", spellcheck: "false", placeholder: "or type a service id" });
  const state = h("select", { dataset: { filter: "state" } }, STATES.map((s) => h("option", { value: s }, s || "All states")));
  if (params.get("state")) state.value = params.get("state");
  const fresh = new Freshness(signal);
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const more = h("p", { class: "hint" });
  const labels = ["Task", "State", "Destination", "Due", "Priority", "Attempts", "Agent", "Updated", ""];
  const t = table(labels, { caption: "Tasks, oldest first", numeric: [4, 5] });
  const canCancel = may("Supervisor", "Admin", "Flow");
  const sid = () => other.value.trim() || service.value;
  let generation = 0;

  const load = async () => {
    const gen = generation;
    if (!sid()) {
      say(alert, "info", "Choose a service.");
      return;
    }
    const tasks = [];
    let token = "";
    let pages = 0;
    do {
      const q = new URLSearchParams({ top: "50" });
      if (state.value) q.set("state", state.value);
      if (token) q.set("continuationToken", token);
      const r = await call("GET", `/services/${encodeURIComponent(sid())}/outbound-tasks?${q}`, { signal });
      tasks.push(...(r.data.value || []));
      token = r.data.continuationToken || "";
      pages++;
    } while (token && pages < PAGES);
    if (gen !== generation) return; // the filter changed meanwhile
    alert.className = "alert";
    setText(alert, "");
    setText(more, token ? `Showing the first ${tasks.length} tasks; choose a state to narrow the list.` : `${tasks.length} task(s).`);
    syncRows(t.tbody, tasks, (x) => x.id, (tr, x) => {
      const open = x.state === "Scheduled" || x.state === "Queued";
      setCells(tr, labels, [
        x.id,
        [x.state, () => badge(x.state, x.state === "Failed" || x.state === "Expired" ? "bad" : x.state === "Completed" ? "ok" : "neutral")],
        x.destination,
        fmtTime(x.dueDateTimeUtc),
        String(x.priority),
        `${x.attempts}/${x.maxAttempts}`,
        x.agent?.userId || "—",
        fmtTime(x.updatedAt),
        [open ? `open:${canCancel}` : "closed", () => (open ? cancelButton(canCancel, x, alert, () => load().then(() => fresh.ok(), () => {})) : document.createTextNode(""))],
      ]);
    });
  };
  const reload = () => {
    generation++;
    t.tbody.replaceChildren();
    load().then(() => fresh.ok(), (e) => { if (e.name !== "AbortError") { fresh.failed(e); say(alert, "error", describe(e)); } });
  };
  service.addEventListener("change", reload);
  state.addEventListener("change", reload);
  other.addEventListener("change", reload);
  poll(signal, async () => {
    try {
      await load();
    } catch (e) {
      if (e.status) say(alert, "error", describe(e));
      throw e;
    }
  }, fresh);
  return h("section", { class: "panel", "aria-labelledby": "tasks-h" }, h("h2", { id: "tasks-h" }, "Outbound tasks"),
    !canCancel ? h("p", { class: "alert info" }, `Your role (${roleNames()}) does not allow cancelling tasks.`) : null,
    h("div", { class: "grid" }, field({ label: "Service", input: service }), field({ label: "Service id", input: other }), field({ label: "State", input: state })),
    fresh.el, alert, more, t.el);
}

function cancelButton(can, task, alert, refresh) {
  return h("button", {
    type: "button", class: "btn small danger", disabled: !can, "aria-label": `Cancel task ${task.id}`,
    onclick: async (e) => {
      if (!confirm(`Cancel the task to ${task.destination}?`)) return;
      e.target.disabled = true;
      try {
        await call("DELETE", `/services/${encodeURIComponent(task.serviceId)}/outbound-tasks/${encodeURIComponent(task.id)}`);
        say(alert, "ok", `Task ${task.id} cancelled.`);
        refresh();
      } catch (err) {
        say(alert, "error", `Task ${task.id}: ${describe(err)}`);
        e.target.disabled = false;
      }
    },
  }, "Cancel");
}

function subscriptionsPanel(signal) {
  const fresh = new Freshness(signal);
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const labels = ["Subscription", "URL", "Events", "State", "Last delivery", "Last error", "Failed", ""];
  const t = table(labels, { caption: "Event subscriptions" });
  const deliveries = h("div", { "aria-live": "polite" });
  const can = may("Admin", "Flow");
  let open = "";
  let shownFor = "";
  const controller = new AbortController();
  signal.addEventListener("abort", () => controller.abort());
  const panel = h("section", { class: "panel", "aria-labelledby": "subs-h" }, h("h2", { id: "subs-h" }, "Event subscriptions"), fresh.el, alert, t.el, deliveries);
  if (!can) {
    say(alert, "info", `Your role (${roleNames()}) does not allow reading event subscriptions: they need Switchboard.Admin or Switchboard.Flow.`);
    fresh.el.hidden = t.el.hidden = true;
    return panel;
  }
  const load = async () => {
    let r;
    try {
      r = await call("GET", "/subscriptions", { signal });
    } catch (e) {
      if (e.notDeployed) {
        say(alert, "info", "Event subscriptions (Power Automate triggers, webhooks) are not in this Switchboard yet.");
        fresh.el.hidden = t.el.hidden = true;
        controller.abort();
        return;
      }
      say(alert, "error", describe(e));
      throw e;
    }
    alert.className = "alert";
    setText(alert, "");
    const subs = Array.isArray(r.data) ? r.data : r.data.value || [];
    syncRows(t.tbody, subs, (s) => s.id, (tr, s) => setCells(tr, labels, [
      s.description ? `${s.description} (${s.id})` : s.id,
      s.url,
      (s.events || []).join(", "),
      [s.state, () => badge(s.state, s.state === "active" ? "ok" : s.state === "failing" ? "warn" : "bad")],
      fmtTime(s.lastDeliveryAt),
      s.lastError || "—",
      String(s.failedDeliveries ?? 0),
      [s.id, () => h("span", { class: "row" },
        h("button", { type: "button", class: "btn small", "aria-label": `Deliveries of ${s.id}`, onclick: () => { open = s.id; showDeliveries(); } }, "Deliveries"),
        h("button", {
          type: "button", class: "btn small danger", "aria-label": `Delete subscription ${s.id}`,
          onclick: async () => {
            if (!confirm(`Delete the subscription to ${s.url}? Its flow or receiver gets no more events.`)) return;
            try {
              await call("DELETE", `/subscriptions/${encodeURIComponent(s.id)}`);
              say(alert, "ok", `Subscription ${s.id} deleted.`);
              if (open === s.id) { open = ""; shownFor = ""; deliveries.replaceChildren(); }
              load().then(() => fresh.ok(), () => {});
            } catch (e) { say(alert, "error", describe(e)); }
          },
        }, "Delete"))],
    ]));
    if (open) await showDeliveries();
  };
  poll(controller.signal, load, fresh);

  const dLabels = ["Event", "Type", "Subject", "State", "Status", "Attempts", "Last try", "Next try", "Last error"];
  const dt = table(dLabels, { caption: "The last 100 deliveries" });
  async function showDeliveries() {
    if (shownFor !== open) {
      shownFor = open;
      dt.tbody.replaceChildren();
      clear(deliveries, h("h3", {}, `Deliveries of ${open}`), dt.el);
    }
    try {
      const r = await call("GET", `/subscriptions/${encodeURIComponent(open)}/deliveries`, { signal });
      const list = Array.isArray(r.data) ? r.data : r.data.value || [];
      syncRows(dt.tbody, list, (d) => `${d.eventId}|${d.type}`, (tr, d) => setCells(tr, dLabels, [
        d.eventId, d.type, d.subject || "—", d.state || "—", d.statusCode ? String(d.statusCode) : "—", String(d.attempts ?? "—"),
        fmtTime(d.lastTryAt), fmtTime(d.nextTryAt), d.lastError || "—",
      ]));
    } catch (e) {
      if (e.name !== "AbortError") clear(deliveries, h("p", { class: "alert error" }, describe(e)));
    }
  }
  return panel;
}
