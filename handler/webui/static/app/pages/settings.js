// Page 1: tenant settings (SPEC section 5), every field, each error at its
// field; widget key Copy and Refresh; ACS Check; the presence accounts with
// their status; the Grant Permission link; the attendant filter check.
import { call, describe, may, roleNames, ApiError } from "../api.js";
import { h, clear, field, fmtTime, badge, copyButton, setText } from "../dom.js";
import { clearErrors, showError, say } from "../forms.js";

// The editable settings: dotted name, label, kind, and what the input
// offers. The server checks every rule; the hints repeat them.
const FIELDS = [
  { name: "outbound.maxScheduledTasksPerService", label: "Outbound tasks per service (cap)", kind: "int", min: 1, max: 50, hint: "1–50, default 20: scheduled, queued and in-progress tasks per service." },
  { name: "interact.enabled", label: "Interact enabled", kind: "bool", hint: "Needs an ACS connection string." },
  { name: "interact.acsConnectionString", label: "Interact ACS connection string", kind: "secret", target: "interact" },
  { name: "interact.o365UserId", label: "Meetings are created for (user object id)", kind: "text", nullable: true, hint: "An Entra object id (GUID); empty: none." },
  { name: "interact.sessionRecoveryTimeoutSeconds", label: "Session recovery timeout (seconds)", kind: "int", min: 5, max: 60, hint: "5–60, default 20." },
  { name: "interact.authorization", label: "Widget authorization", kind: "choice", options: ["None", "VerifyToken", "VerifyTokenAndTenant"] },
  { name: "assistant.useOwnAcsInstance", label: "Assistant uses its own ACS instance", kind: "bool" },
  { name: "assistant.acsConnectionString", label: "Assistant ACS connection string", kind: "secret", target: "assistant" },
  { name: "attendantConsole.contactSearchFilter", label: "Contact search filter (Graph $filter)", kind: "textarea", hint: "ANDed with the attendant's search; empty: every user. At most 2048 characters on one line." },
  { name: "attendantConsole.teamVisibility", label: "Team members shown to attendants", kind: "choice", options: ["NoMembers", "OwnMembers", "AllMembers"] },
  { name: "presenceTracking.trackOverGuestAccounts", label: "Track presence over the guest presence accounts", kind: "bool", hint: "Extended presence (in a call, presenting) through the two presence accounts invited as guests." },
];

const SECTIONS = [
  ["outbound", "Outbound tasks"],
  ["interact", "Interact"],
  ["assistant", "Assistant"],
  ["attendantConsole", "Attendant Console"],
  ["presenceTracking", "Presence tracking"],
];

function get(obj, dotted) {
  return dotted.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function put(obj, dotted, value) {
  const keys = dotted.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys[keys.length - 1]] = value;
}

export async function render(root, { signal }) {
  root.append(h("h1", {}, "Tenant settings"));
  const pageAlert = h("div", { class: "alert", "aria-live": "polite" });
  root.append(pageAlert);
  if (!may("Admin")) {
    // The API gives the settings (widget key, secrets' endpoints) to the
    // Admin only, read and write (SPEC section 9): nothing to show or edit.
    root.append(h("p", { class: "alert info", role: "status" },
      `Your role (${roleNames()}) does not allow the tenant settings: reading and changing them needs Switchboard.Admin. ` +
      "The Services and Live view pages show what your role may see."));
    return;
  }
  let loaded;
  try {
    loaded = await call("GET", "/settings", { signal });
  } catch (e) {
    if (e.name !== "AbortError") say(pageAlert, "error", describe(e));
    return;
  }
  let state = { data: loaded.data, etag: loaded.etag };

  const form = h("form", { novalidate: true, "aria-label": "Tenant settings" });
  const inputs = {};
  const formAlert = h("div", { class: "alert", "aria-live": "polite" });
  const sectionEls = {};
  for (const [key, title] of SECTIONS) {
    sectionEls[key] = h("fieldset", { class: "panel" }, h("legend", {}, title));
    form.append(sectionEls[key]);
  }

  for (const f of FIELDS) {
    let input;
    switch (f.kind) {
      case "int":
        input = h("input", { type: "number", inputmode: "numeric", min: f.min, max: f.max, step: 1 });
        break;
      case "bool":
        input = h("input", { type: "checkbox" });
        break;
      case "choice":
        input = h("select", {}, f.options.map((o) => h("option", { value: o }, o)));
        break;
      case "textarea":
        input = h("textarea", { rows: 3, spellcheck: "false" });
        break;
      case "secret":
        input = h("input", { type: "password", autocomplete: "off", spellcheck: "false" });
        break;
      default:
        input = h("input", { type: "text", spellcheck: "false" });
    }
    inputs[f.name] = input;
    const wrap = field({ label: f.label, name: f.name, input, hint: f.hint });
    const section = sectionEls[f.name.split(".")[0]];
    if (f.kind === "secret") {
      const remove = h("input", { type: "checkbox" });
      inputs[f.name + "#remove"] = remove;
      const check = acsCheck(f, input);
      const status = h("p", { class: "hint", dataset: { status: f.name } });
      wrap.append(status, field({ label: "Remove the stored connection string", input: remove }), check);
    }
    section.append(wrap);
    if (f.name === "interact.sessionRecoveryTimeoutSeconds") section.append(widgetKey(state, formAlert, (s) => { state = s; form.querySelector("[data-widget-key]").value = s.data?.interact?.widgetKey || ""; }));
    if (f.name === "attendantConsole.contactSearchFilter") section.append(filterCheck(input));
  }
  const accounts = h("div", {});
  sectionEls.presenceTracking.append(accounts, consentLink(signal));

  const save = h("button", { type: "submit", class: "btn primary" }, "Save");
  const reload = h("button", { type: "button", class: "btn", onclick: () => location.reload() }, "Reload");
  form.append(h("div", { class: "sticky-actions" }, formAlert, h("div", { class: "row" }, save, reload)));
  root.append(form);

  function fill() {
    const d = state.data;
    for (const f of FIELDS) {
      const input = inputs[f.name];
      const v = get(d, f.name);
      if (f.kind === "bool") input.checked = !!v;
      else if (f.kind === "secret") {
        input.value = "";
        const section = f.name.split(".")[0];
        const set = get(d, section + ".acsConnectionStringSet");
        const endpoint = get(d, section + ".acsEndpoint");
        input.placeholder = set ? "stored (write-only); type a new one to replace it" : "not set";
        setText(form.querySelector(`[data-status="${f.name}"]`), set ? `Stored for ${endpoint || "an ACS resource"}. Leave empty to keep it.` : "None stored.");
        inputs[f.name + "#remove"].checked = false;
      } else input.value = v ?? "";
    }
    const widget = form.querySelector("[data-widget-key]");
    if (widget) widget.value = get(d, "interact.widgetKey") || "";
    const check = get(d, "attendantConsole.contactSearchFilterCheck");
    const checkEl = form.querySelector("[data-filter-check-state]");
    if (checkEl) setText(checkEl, check ? `Last check: ${check.state}${check.at ? " at " + fmtTime(check.at) : ""}${check.message ? " — " + check.message : ""}` : "");
    clear(accounts, h("h3", {}, "Presence accounts"), [1, 2].map((n) => accountStatus(n, d.presenceTracking || {})));
  }

  // patch holds only what the user changed: a merge patch names nothing
  // else, so a concurrent change of another field is not overwritten.
  function patch() {
    const p = {};
    const d = state.data;
    for (const f of FIELDS) {
      const input = inputs[f.name];
      const old = get(d, f.name);
      switch (f.kind) {
        case "bool":
          if (input.checked !== !!old) put(p, f.name, input.checked);
          break;
        case "int": {
          const raw = input.value.trim();
          if (raw === String(old ?? "")) break;
          // Sent as typed: the server names the field and its range.
          put(p, f.name, raw === "" ? null : (/^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw));
          break;
        }
        case "secret":
          if (inputs[f.name + "#remove"].checked) put(p, f.name, null);
          else if (input.value.trim() !== "") put(p, f.name, input.value.trim());
          break;
        default: {
          const v = input.value;
          if (v === (old ?? "")) break;
          put(p, f.name, v === "" && f.nullable ? null : v);
        }
      }
    }
    return p;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form, formAlert);
    const p = patch();
    if (Object.keys(p).length === 0) {
      say(formAlert, "info", "Nothing changed.");
      return;
    }
    save.disabled = true;
    try {
      const r = await call("PATCH", "/settings", { body: p, contentType: "application/merge-patch+json", ifMatch: state.etag });
      state = { data: r.data, etag: r.etag };
      fill();
      say(formAlert, "ok", "Saved.");
    } catch (err) {
      showError(form, formAlert, err);
    } finally {
      save.disabled = false;
    }
  });
  fill();
}

function accountStatus(n, pt) {
  const upn = pt[`account${n}Upn`];
  const st = pt[`account${n}Status`] || {};
  const kind = st.state === "ok" ? "ok" : st.state === "failing" ? "bad" : "neutral";
  const yesNo = (v) => (v === true ? "yes" : v === false ? "no" : "unknown");
  return h("div", { class: "field" },
    h("div", { class: "label" }, `Account ${n}: `, upn ? h("code", {}, upn) : "not configured", " ", badge(st.state || "unknown", kind)),
    h("p", { class: "hint" }, `Invited as guest: ${yesNo(st.invitedAsGuest)} · permission granted: ${yesNo(st.permissionGranted)} · last success: ${fmtTime(st.lastSuccessAt)}`),
    st.lastErrorAt ? h("p", { class: "hint" }, `Last error ${fmtTime(st.lastErrorAt)}: ${st.lastErrorReason || ""}${st.lastError ? " — " + st.lastError : ""}`) : null);
}

function consentLink(signal) {
  const box = h("div", { class: "field" }, h("div", { class: "label" }, "Grant Permission"), h("p", { class: "hint" }, "Loading the admin-consent link…"));
  call("GET", "/presence-tracking", { signal }).then((r) => {
    const url = r.data.adminConsentUrl;
    clear(box, h("div", { class: "label" }, "Grant Permission"),
      url ? [h("p", {}, h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, "Open the admin-consent page"), " (a tenant admin of this tenant grants the presence app its permissions)."),
        h("div", { class: "row" }, h("input", { type: "text", readonly: true, value: url, "aria-label": "Admin-consent link" }), copyButton("Copy", () => url, "admin-consent link"))]
        : h("p", { class: "hint" }, "No presence app is configured in this deployment."));
  }).catch((e) => {
    if (e.name !== "AbortError") clear(box, h("div", { class: "label" }, "Grant Permission"), h("p", { class: "field-error" }, describe(e)));
  });
  return box;
}

function widgetKey(stateRef, formAlert, onChange) {
  const input = h("input", { type: "text", readonly: true, dataset: { widgetKey: "" }, value: stateRef.data?.interact?.widgetKey || "", spellcheck: "false" });
  const status = h("p", { class: "field-error", "aria-live": "polite" });
  const refresh = h("button", {
    type: "button", class: "btn small", "aria-label": "Refresh widget key",
    onclick: async () => {
      if (!confirm("Replace the widget key? Websites using the old key stop working until they are given the new one.")) return;
      status.textContent = "";
      try {
        const r = await call("POST", "/settings/widget-key/refresh", { body: {} });
        onChange({ data: r.data, etag: r.etag });
        say(formAlert, "ok", "New widget key generated.");
      } catch (e) {
        status.textContent = describe(e);
      }
    },
  }, "Refresh");
  const wrap = field({ label: "Widget key", input, hint: "The Interact widget's key for this tenant. Refresh replaces it." });
  wrap.append(h("div", { class: "row" }, copyButton("Copy", () => input.value, "widget key"), refresh), status);
  return wrap;
}

function acsCheck(f, input) {
  const result = h("p", { class: "hint", role: "status", "aria-live": "polite" });
  const btn = h("button", {
    type: "button", class: "btn small",
    onclick: async () => {
      const typed = input.value.trim();
      setText(result, "Checking…");
      input.removeAttribute("aria-invalid");
      setText(document.getElementById(input.id + "-error"), "");
      try {
        const r = await call("POST", "/settings/acs-check", { body: typed ? { connectionString: typed } : { target: f.target } });
        const d = r.data;
        setText(result, d.ok ? `OK: ${d.endpoint} issued a token.` : `Failed (${d.reason}): ${d.message}`);
        result.className = d.ok ? "alert ok" : "alert error";
      } catch (e) {
        result.className = "hint";
        setText(result, "");
        if (e instanceof ApiError && (e.field === "connectionString" || e.field === "target")) {
          input.setAttribute("aria-invalid", "true");
          setText(document.getElementById(input.id + "-error"), describe(e));
        } else {
          setText(result, describe(e));
          result.className = "alert error";
        }
      }
    },
  }, "Check");
  return h("div", { class: "row" }, btn, h("span", { class: "hint" }, "Checks the typed string, or the stored one when empty."), result);
}

function filterCheck(input) {
  const result = h("p", { class: "hint", role: "status", "aria-live": "polite" });
  const last = h("p", { class: "hint", dataset: { filterCheckState: "" } });
  const btn = h("button", {
    type: "button", class: "btn small", dataset: { filterCheck: "" },
    onclick: async () => {
      setText(result, "Checking…");
      result.className = "hint";
      input.removeAttribute("aria-invalid");
      setText(document.getElementById(input.id + "-error"), "");
      try {
        const r = await call("POST", "/settings/attendant-filter-check", { body: { filter: input.value } });
        const d = r.data;
        result.className = d.state === "ok" ? "alert ok" : d.state === "invalid" ? "alert error" : "alert warn";
        setText(result, `${d.state}${d.message ? ": " + d.message : ""}`);
      } catch (e) {
        if (e instanceof ApiError && e.field === "filter") {
          // The filter itself is malformed: say so at the filter.
          result.className = "hint";
          setText(result, "");
          input.setAttribute("aria-invalid", "true");
          setText(document.getElementById(input.id + "-error"), describe(e));
          return;
        }
        result.className = "alert error";
        setText(result, describe(e));
      }
    },
  }, "Check filter");
  return h("div", {}, h("div", { class: "row" }, btn), result, last);
}
