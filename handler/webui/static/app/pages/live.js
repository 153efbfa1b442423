// Page 4: the live view (SPEC section 10): per service the queue
// (position, wait, priority), ringing offers, agents in conversation, RONA
// and after-call work, with Reset RONA and End after-call work; every
// table refreshed every 5 s.
import { call, describe, may, roleNames } from "../api.js";
import { h, clear, fmtSeconds, secondsUntil, badge, setText } from "../dom.js";
import { say } from "../forms.js";
import { poll, Freshness, syncRows, setCells, table } from "../live.js";
import { listServices } from "../services-list.js";

const NOT_DEPLOYED = "The live view needs distribution (queues, offers, RONA, after-call work), which this Switchboard does not have yet: it shows queues once that is deployed.";
const MAX_AGENTS = 200;

export async function render(root, { signal }) {
  root.append(h("h1", {}, "Live view"));
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  root.append(alert);
  if (!may("Supervisor", "Admin", "Flow")) {
    say(alert, "info", `Your role (${roleNames()}) does not allow the live view: it needs Switchboard.Supervisor.`);
    return;
  }
  let list;
  try {
    list = await listServices(signal);
  } catch (e) {
    if (e.name !== "AbortError") say(alert, "error", describe(e));
    return;
  }
  if (list.note) root.append(h("p", { class: "hint" }, list.note));
  if (!list.services.length) {
    root.append(h("p", {}, "No services to show. Open one on the Services page first."));
    return;
  }
  for (const svc of list.services) root.append(servicePanel(signal, svc));
}

function servicePanel(signal, svc) {
  const sid = svc.id;
  const base = `/services/${encodeURIComponent(sid)}`;
  const headingId = `live-${sid}`;
  const fresh = new Freshness(signal);
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const figures = h("ul", { class: "figures" });
  const qLabels = ["Position", "Conversation", "Customer", "Priority", "Waiting", "State", "Ringing offers"];
  const queue = table(qLabels, { caption: "Waiting and offered conversations", numeric: [0, 3, 4], name: "queue" });
  const aLabels = ["Agent", "Presence", "Conversation", "Offer", "RONA", "After-call work"];
  const agents = table(aLabels, { caption: "Agents", name: "agents" });
  const agentAlert = h("div", { class: "alert", "aria-live": "polite" });
  const panel = h("section", { class: "panel", "aria-labelledby": headingId },
    h("h2", { id: headingId }, `${svc.name || sid} `, h("span", { class: "muted" }, `(${sid})`)), fresh.el, alert, figures, queue.el, agentAlert, agents.el);

  let members = [];
  let membersAt = 0;
  let deployed = true;
  const controller = new AbortController();
  signal.addEventListener("abort", () => controller.abort());
  poll(controller.signal, async () => {
    let q;
    try {
      q = await call("GET", `${base}/queue`, { signal });
    } catch (e) {
      if (e.notDeployed) {
        deployed = false;
        say(alert, "info", NOT_DEPLOYED);
        fresh.el.hidden = true;
        queue.el.hidden = agents.el.hidden = true;
        controller.abort(); // nothing to poll until the app is updated
        return;
      }
      say(alert, "error", describe(e));
      throw e;
    }
    alert.className = "alert";
    setText(alert, "");
    const d = q.data;
    const items = d.conversations || d.value || d.items || [];
    clear(figures, [["waiting", d.waiting], ["offered", d.offered], ["longest wait", fmtSeconds(d.longestWaitSeconds)],
      ["agents eligible", d.agentsEligible], ["in RONA", d.agentsInRona], ["in after-call work", d.agentsInAfterCallWork]]
      .map(([k, v]) => h("li", {}, `${k}: `, h("b", {}, String(v ?? "—")))));
    syncRows(queue.tbody, items, (c) => c.conversationId, (tr, c) => {
      const ringing = (c.offers || []).filter((o) => o.state === "Ringing");
      setCells(tr, qLabels, [
        String(c.position ?? "—"),
        c.conversationId,
        c.customer?.displayName || c.customer?.phone || "—",
        String(c.priority ?? "—"),
        fmtSeconds(c.waitSeconds),
        c.state,
        ringing.length ? ringing.map((o) => `${o.userId} (lapses in ${fmtSeconds(secondsUntil(o.expiresAt))})`).join("; ") : "—",
      ]);
    });
    if (!deployed) return;
    if (Date.now() - membersAt > 60000) {
      const s = await call("GET", base, { signal });
      members = (s.data.members || []).map((m) => m.userId);
      membersAt = Date.now();
    }
    await refreshAgents(signal, members, agents, aLabels, agentAlert);
  }, fresh);
  return panel;
}

async function refreshAgents(signal, members, agents, labels, alert) {
  const shown = members.slice(0, MAX_AGENTS);
  const states = new Array(shown.length);
  let next = 0;
  let failure = null;
  // Six requests at a time: enough to refresh 200 agents within the 5 s.
  await Promise.all(Array.from({ length: Math.min(6, shown.length) }, async () => {
    while (next < shown.length && !failure) {
      const i = next++;
      try {
        states[i] = (await call("GET", `/agents/${encodeURIComponent(shown[i])}`, { signal })).data;
      } catch (e) {
        failure = e;
      }
    }
  }));
  if (failure) {
    if (failure.notDeployed) {
      say(alert, "info", "Agent states (RONA, after-call work) need distribution, which this Switchboard does not have yet.");
      return;
    }
    throw failure;
  }
  setText(alert, members.length > MAX_AGENTS ? `Showing the first ${MAX_AGENTS} of ${members.length} members.` : "");
  alert.className = members.length > MAX_AGENTS ? "alert info" : "alert";
  // Agents with something going on first, then the others.
  const busy = (a) => (a.offer ? 0 : a.rona ? 1 : a.afterCallWork ? 2 : a.conversation ? 3 : 4);
  const rows = states.filter(Boolean).sort((a, b) => busy(a) - busy(b) || a.userId.localeCompare(b.userId));
  const canAct = may("Supervisor", "Admin");
  syncRows(agents.tbody, rows, (a) => a.userId, (tr, a) => {
    const p = a.presence || {};
    setCells(tr, labels, [
      a.userId,
      p.availability ? `${p.availability} / ${p.activity || "—"}` : "—",
      a.conversation ? `${a.conversation.conversationId} (${a.conversation.serviceId})` : "—",
      a.offer ? `Ringing: ${a.offer.conversationId}, lapses in ${fmtSeconds(secondsUntil(a.offer.expiresAt))}` : "—",
      [a.rona ? `rona:${a.rona.until}` : "none", () => (a.rona ? h("span", { class: "row" }, badge("RONA", "bad"), ` until ${new Date(a.rona.until).toLocaleTimeString()} `,
        actionButton(canAct, "Reset RONA", a.userId, `/agents/${encodeURIComponent(a.userId)}/rona/reset`)) : document.createTextNode("—"))],
      [a.afterCallWork ? `acw:${a.afterCallWork.until}` : "none", () => (a.afterCallWork ? h("span", { class: "row" }, badge("After-call work", "warn"), ` until ${new Date(a.afterCallWork.until).toLocaleTimeString()} `,
        actionButton(canAct, "End after-call work", a.userId, `/agents/${encodeURIComponent(a.userId)}/after-call-work/end`)) : document.createTextNode("—"))],
    ]);
  });
}

function actionButton(canAct, label, userId, path) {
  const status = h("span", { class: "field-error", "aria-live": "polite" });
  const btn = h("button", {
    type: "button", class: "btn small", disabled: !canAct, "aria-label": `${label} for ${userId}`,
    title: canAct ? null : "Your role does not allow this (Switchboard.Supervisor)",
    onclick: async () => {
      btn.disabled = true;
      status.textContent = "";
      try {
        await call("POST", path, { body: {} });
        status.className = "hint";
        status.textContent = "Done; shown at the next refresh.";
      } catch (e) {
        status.className = "field-error";
        status.textContent = describe(e);
        btn.disabled = false;
      }
    },
  }, label);
  return h("span", {}, btn, status);
}
