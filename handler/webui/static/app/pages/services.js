// Page 3: services: list, create, edit (members and skills, distribution,
// queue), and for each "who can take a conversation now": every member
// with presence, source, age and the reason, refreshed every 5 s.
import { call, describe, may, roleNames } from "../api.js";
import { h, clear, field, fmtTime, badge, fmtSeconds } from "../dom.js";
import { clearErrors, showError, say } from "../forms.js";
import { poll, Freshness, syncRows, setCells, table } from "../live.js";
import { listServices, remember, forget } from "../services-list.js";

export async function render(root, { signal, params }) {
  if (params[0]) return renderService(root, signal, params[0]);
  return renderList(root, signal);
}

async function renderList(root, signal) {
  root.append(h("h1", {}, "Services"));
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  root.append(alert);
  const list = await listServices(signal);
  if (list.note) say(alert, "info", list.note);
  const labels = ["Service", "Name", "Members", "Active", "Waiting"];
  const t = table(labels, { caption: "Services of this tenant" });
  syncRows(t.tbody, list.services, (s) => s.id, (tr, s) => setCells(tr, labels, [
    [s.id, () => h("a", { href: `#/services/${encodeURIComponent(s.id)}` }, s.id)],
    s.name || "—",
    s.memberCount ?? "—",
    s.activeMemberCount ?? "—",
    s.waiting ?? s.queue?.waiting ?? "—",
  ]));
  root.append(h("section", { class: "panel" }, h("h2", {}, "All services"), list.services.length ? t.el : h("p", {}, "No services yet."), openById()));
  root.append(createPanel());
}

function openById() {
  const input = h("input", { type: "text", spellcheck: "false", autocomplete: "off" });
  const form = h("form", { novalidate: true, class: "row" }, field({ label: "Open a service by id", input }), h("button", { type: "submit", class: "btn" }, "Open"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) location.hash = `#/services/${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

function createPanel() {
  const can = may("Admin");
  const id = h("input", { type: "text", spellcheck: "false", autocomplete: "off", disabled: !can });
  const name = h("input", { type: "text", disabled: !can });
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const form = h("form", { novalidate: true, "aria-labelledby": "create-h" },
    h("h2", { id: "create-h" }, "New service"),
    !can ? h("p", { class: "alert info" }, `Your role (${roleNames()}) does not allow creating services: it needs Switchboard.Admin.`) : null,
    h("div", { class: "grid" },
      field({ label: "Service id", name: "s", input: id, hint: "Letters, digits, - and _; it names the service in every route." }),
      field({ label: "Name", name: "name", input: name })),
    h("button", { type: "submit", class: "btn primary", disabled: !can }, "Create"), alert);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form, alert);
    const sid = id.value.trim();
    if (!sid) {
      showError(form, alert, { field: "s", message: "A service needs an id." });
      return;
    }
    try {
      await call("GET", `/services/${encodeURIComponent(sid)}`);
      showError(form, alert, { field: "s", message: "A service with this id exists already." });
      return;
    } catch (err) {
      if (err.status !== 404) { showError(form, alert, err); return; }
    }
    try {
      await call("PUT", `/services/${encodeURIComponent(sid)}`, { body: { name: name.value.trim(), members: [] } });
      remember(sid);
      location.hash = `#/services/${encodeURIComponent(sid)}`;
    } catch (err) {
      showError(form, alert, err.field === "serviceId" ? Object.assign(err, { field: "s" }) : err);
    }
  });
  return h("section", { class: "panel" }, form);
}

// The distribution settings: those of SPEC section 4, and those of
// section 10, shown when the service's GET carries them.
const BASIC = [
  { name: "deliverWhileBusy", label: "Deliver while Busy", kind: "bool" },
  { name: "deliverWhileAway", label: "Deliver while Away / Be right back", kind: "bool" },
  { name: "order", label: "Order", kind: "choice", options: ["LongestIdle", "RoundRobin", "Broadcast"] },
  { name: "broadcastSize", label: "Broadcast size", kind: "int", hint: "1–50: agents offered at once (Broadcast)." },
  { name: "holdSeconds", label: "Hold (seconds)", kind: "int", hint: "5–3600: how long a reservation lasts." },
];
const QUEUE = [
  { name: "ringSeconds", label: "Ring (seconds)", kind: "int", hint: "5–180: how long an offer rings." },
  { name: "rona.enabled", label: "RONA: a lapsed offer puts the agent into RONA", kind: "bool" },
  { name: "rona.resetSeconds", label: "RONA reset (seconds)", kind: "int", hint: "10–19200." },
  { name: "rona.onDecline", label: "A decline counts as RONA", kind: "bool" },
  { name: "afterCallWorkSeconds", label: "After-call work (seconds)", kind: "int", hint: "0–3600." },
  { name: "queue.maxWaitSeconds", label: "Longest wait (seconds)", kind: "int", hint: "10–2700, then the timeout action." },
  { name: "queue.maxLength", label: "Queue length", kind: "int", hint: "1–200." },
  { name: "queue.onTimeout", label: "On timeout", kind: "action", actions: ["Disconnect", "Forward", "Callback"] },
  { name: "queue.onFull", label: "When full", kind: "action", actions: ["Disconnect", "Forward", "Callback"] },
  { name: "queue.onNoAgents", label: "When no agent is signed in", kind: "action", actions: ["Queue", "Disconnect", "Forward", "Callback"] },
];

const get = (o, dotted) => dotted.split(".").reduce((x, k) => (x == null ? undefined : x[k]), o);
function put(o, dotted, v) {
  const ks = dotted.split(".");
  for (const k of ks.slice(0, -1)) o = o[k] ??= {};
  o[ks[ks.length - 1]] = v;
}

async function renderService(root, signal, sid) {
  const path = `/services/${encodeURIComponent(sid)}`;
  root.append(h("p", {}, h("a", { href: "#/services" }, "← All services")), h("h1", {}, `Service ${sid}`));
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  root.append(alert);
  let svc;
  try {
    svc = await call("GET", path, { signal });
  } catch (e) {
    if (e.name === "AbortError") return;
    say(alert, "error", e.status === 404 && !e.notDeployed ? `There is no service ${sid}.` : describe(e));
    if (e.status === 404) forget(sid);
    return;
  }
  remember(sid);
  root.append(whoCanTake(signal, path));
  root.append(editor(svc, path, sid));
}

function whoCanTake(signal, path) {
  const fresh = new Freshness(signal);
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const labels = ["Member", "Presence", "Source", "Age", "Can take it now", "Reason"];
  const t = table(labels, { caption: "Every member, in the order they would be offered a conversation" });
  const summary = h("p", { "aria-live": "off" });
  poll(signal, async () => {
    let r;
    try {
      r = await call("POST", `${path}/route`, { body: { preview: true }, signal });
      clearErrors(alert.parentNode || alert, alert);
    } catch (e) {
      if (e.status) say(alert, "error", describe(e));
      throw e;
    }
    const d = r.data;
    // The chosen agents come without their presence: read it.
    const agentPresence = await Promise.all(d.agents.map((a) => call("GET", `/users/${encodeURIComponent(a.userId)}/presence`, { signal }).then((p) => p.data, () => ({}))));
    const rows = [
      ...d.agents.map((a, i) => ({ userId: a.userId, next: i, presence: agentPresence[i] })),
      ...d.candidates.map((c) => ({ userId: c.userId, presence: c.presence, eligible: true })),
      ...d.excluded.map((x) => ({ userId: x.userId, presence: x.presence, reason: x.reason, message: x.message })),
    ];
    summary.textContent = `${d.agents.length + d.candidates.length} of ${rows.length} members can take a conversation now.`;
    syncRows(t.tbody, rows, (m) => m.userId, (tr, m) => {
      const p = m.presence || {};
      const can = !m.reason;
      setCells(tr, labels, [
        m.userId,
        p.availability ? `${p.availability} / ${p.activity || "—"}` : "—",
        p.source || "—",
        p.ageSeconds !== undefined ? fmtSeconds(p.ageSeconds) : "—",
        [can ? (m.next !== undefined ? "next" : "yes") : "no", () => (can ? badge(m.next !== undefined ? "Yes — next in line" : "Yes", "ok") : badge("No", "bad"))],
        can ? "Eligible" : `${m.reason}: ${m.message}`,
      ]);
      tr.dataset.reason = m.reason || "";
    });
  }, fresh);
  return h("section", { class: "panel", "aria-labelledby": "who-h" }, h("h2", { id: "who-h" }, "Who can take a conversation now"), fresh.el, alert, summary, t.el);
}

function editor(loaded, path, sid) {
  const can = may("Admin");
  let etag = loaded.etag;
  let svc = loaded.data;
  const extended = svc.distribution && "ringSeconds" in svc.distribution;
  const inputs = {};
  const form = h("form", { novalidate: true, "aria-labelledby": "edit-h" });
  const alert = h("div", { class: "alert", "aria-live": "polite" });

  const input = (f, prefix) => {
    let el;
    if (f.kind === "bool") el = h("input", { type: "checkbox" });
    else if (f.kind === "choice") el = h("select", {}, f.options.map((o) => h("option", { value: o }, o)));
    else if (f.kind === "int") el = h("input", { type: "number", step: 1, inputmode: "numeric" });
    else el = h("input", { type: "text", spellcheck: "false" });
    el.disabled = !can;
    inputs[prefix + f.name] = el;
    return field({ label: f.label, name: prefix + f.name, input: el, hint: f.hint });
  };
  const actionInputs = (f) => {
    const name = "distribution." + f.name;
    const action = h("select", { disabled: !can }, f.actions.map((a) => h("option", { value: a }, a)));
    const target = h("input", { type: "text", spellcheck: "false", disabled: !can });
    inputs[name + ".action"] = action;
    inputs[name + ".serviceId"] = target;
    return h("div", { class: "grid" }, field({ label: f.label, name: name + ".action", input: action }),
      field({ label: `${f.label}: target service`, name: name + ".serviceId", input: target, hint: "Needed for Forward; Callback defaults to this service." }));
  };

  const name = h("input", { type: "text", disabled: !can, value: svc.name });
  const team = h("input", { type: "text", spellcheck: "false", disabled: !can, value: svc.teamId || "" });
  const memberLabels = ["Member (object id)", "Active", ...(extended ? ["Skills"] : []), ""];
  const members = table(memberLabels, { caption: "Members" });
  const add = h("textarea", { rows: 3, spellcheck: "false", disabled: !can });

  form.append(
    h("h2", { id: "edit-h" }, "Definition"),
    !can ? h("p", { class: "alert info" }, `Your role (${roleNames()}) can read this service but not change it: that needs Switchboard.Admin.`) : null,
    h("div", { class: "grid" }, field({ label: "Name", name: "name", input: name }),
      field({ label: "Teams team id", name: "teamId", input: team, hint: "Set: the members are that team's, synced every 15 minutes." })),
    h("p", { class: "hint" }, `${svc.memberCount} members, ${svc.activeMemberCount} active. Updated ${fmtTime(svc.updatedAt)}.`,
      svc.teamId ? ` Last team sync ${fmtTime(svc.lastTeamSync)}${svc.lastTeamSyncError ? ": " + svc.lastTeamSyncError : ""}.` : ""),
    h("fieldset", { class: "panel" }, h("legend", {}, "Members"), members.el,
      field({ label: "Add members", name: "members", input: add, hint: "Entra object ids, one per line or separated by commas." })),
    h("fieldset", { class: "panel" }, h("legend", {}, "Distribution"), h("div", { class: "grid" }, BASIC.map((f) => input(f, "distribution.")))),
    extended ? h("fieldset", { class: "panel" }, h("legend", {}, "Queue, RONA and after-call work"),
      h("div", { class: "grid" }, QUEUE.filter((f) => f.kind !== "action").map((f) => input(f, "distribution."))),
      QUEUE.filter((f) => f.kind === "action").map(actionInputs)) : null);

  const save = h("button", { type: "submit", class: "btn primary", disabled: !can }, "Save");
  const sync = svc.teamId ? h("button", { type: "button", class: "btn", disabled: !can, onclick: () => act(() => call("POST", `${path}/sync`, { body: {} }), "Team synced.") }, "Sync team now") : null;
  const del = h("button", {
    type: "button", class: "btn danger", disabled: !can,
    onclick: async () => {
      if (!confirm(`Delete service ${sid}? Routing to it stops at once.`)) return;
      try {
        await call("DELETE", path, { ifMatch: etag });
        location.hash = "#/services";
      } catch (err) { showError(form, alert, err); }
    },
  }, "Delete service");
  form.append(h("div", { class: "sticky-actions" }, alert, h("div", { class: "row" }, save, sync, del)));

  async function act(fn, okText) {
    clearErrors(form, alert);
    try {
      await fn();
      say(alert, "ok", okText);
    } catch (err) { showError(form, alert, err); }
  }

  function fillMembers() {
    const list = svc.members || [];
    syncRows(members.tbody, list.map((m, i) => ({ ...m, i })), (m) => m.userId, (tr, m) => {
      setCells(tr, memberLabels, [
        [`${m.i}`, () => h("input", { type: "text", readonly: true, value: m.userId, "aria-label": "Member object id", dataset: { field: `members[${m.i}].userId`, member: m.userId } })],
        [`${m.i}`, () => h("input", { type: "checkbox", checked: m.active !== false, disabled: !can, "aria-label": `Active: ${m.userId}`, dataset: { field: `members[${m.i}].active`, active: m.userId } })],
        ...(extended ? [[`${m.i}`, () => h("input", { type: "text", spellcheck: "false", disabled: !can, value: skillsText(m.skills), "aria-label": `Skills of ${m.userId} (name:level, …)`, dataset: { field: `members[${m.i}].skills`, skills: m.userId } })]] : []),
        [`${m.i}`, () => h("button", { type: "button", class: "btn small danger", disabled: !can, "aria-label": `Remove ${m.userId}`, onclick: (e) => e.target.closest("tr").remove() }, "Remove")],
      ]);
    });
  }

  function fill() {
    name.value = svc.name || "";
    team.value = svc.teamId || "";
    for (const f of [...BASIC, ...(extended ? QUEUE : [])]) {
      const v = get(svc.distribution, f.name);
      if (f.kind === "action") {
        inputs[`distribution.${f.name}.action`].value = v?.action || f.actions[0];
        inputs[`distribution.${f.name}.serviceId`].value = v?.serviceId || "";
        continue;
      }
      const el = inputs["distribution." + f.name];
      if (f.kind === "bool") el.checked = !!v;
      else el.value = v ?? "";
    }
    fillMembers();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form, alert);
    const body = { name: name.value.trim(), teamId: team.value.trim() || null, members: [], distribution: {} };
    for (const tr of members.tbody.rows) {
      // Rows may have been removed: errors name the index in this body.
      const i = body.members.length;
      tr.querySelector("[data-member]").dataset.field = `members[${i}].userId`;
      tr.querySelector("[data-active]").dataset.field = `members[${i}].active`;
      tr.querySelector("[data-skills]")?.setAttribute("data-field", `members[${i}].skills`);
      const id = tr.querySelector("[data-member]").value;
      const m = { userId: id, active: tr.querySelector("[data-active]").checked };
      if (extended) {
        const parsed = parseSkills(tr.querySelector("[data-skills]").value);
        if (parsed.error) {
          showError(form, alert, { field: `members[${body.members.length}].skills`, message: parsed.error });
          return;
        }
        m.skills = parsed.skills;
      }
      body.members.push(m);
    }
    for (const id of add.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean)) body.members.push({ userId: id, active: true });
    for (const f of [...BASIC, ...(extended ? QUEUE : [])]) {
      if (f.kind === "action") {
        const a = { action: inputs[`distribution.${f.name}.action`].value };
        const target = inputs[`distribution.${f.name}.serviceId`].value.trim();
        if (target) a.serviceId = target;
        put(body.distribution, f.name, a);
        continue;
      }
      const el = inputs["distribution." + f.name];
      if (f.kind === "bool") put(body.distribution, f.name, el.checked);
      else if (f.kind === "int") {
        const raw = el.value.trim();
        if (raw !== "") put(body.distribution, f.name, /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw);
      } else put(body.distribution, f.name, el.value);
    }
    save.disabled = true;
    try {
      const r = await call("PUT", path, { body, ifMatch: etag });
      svc = r.data;
      etag = r.etag;
      add.value = "";
      members.tbody.replaceChildren();
      fill();
      say(alert, "ok", "Saved.");
    } catch (err) {
      showError(form, alert, err);
    } finally {
      save.disabled = !can;
    }
  });
  fill();
  return h("section", { class: "panel" }, form);
}

function skillsText(skills) {
  return Object.entries(skills || {}).map(([k, v]) => `${k}:${v}`).join(", ");
}

function parseSkills(text) {
  const skills = {};
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^:\s]+)\s*:\s*(\d+)$/.exec(part);
    if (!m) return { error: `"${part}" is not name:level (e.g. german:3).` };
    skills[m[1]] = Number(m[2]);
  }
  return { skills };
}
