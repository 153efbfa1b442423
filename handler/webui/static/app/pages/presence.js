// Page 2: presence tracking: the sources with their reasons and pauses,
// the last poll's (and notifications') figures, refreshed every 5 s; Test
// UPN through account 1 or 2.
import { call, describe, may, roleNames } from "../api.js";
import { h, clear, field, fmtTime, badge, copyButton } from "../dom.js";
import { clearErrors, showError, say } from "../forms.js";
import { poll, Freshness, syncRows, setCells, table } from "../live.js";

const SOURCE_NAMES = { account1: "Presence account 1", account2: "Presence account 2", application: "Application permission" };

export async function render(root, { signal }) {
  root.append(h("h1", {}, "Presence tracking"));
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const fresh = new Freshness(signal);
  const labels = ["Source", "Account", "State", "Invited", "Permission", "Last success", "Last error", "Paused until"];
  const sources = table(labels, { caption: "Sources, tried in this order" });
  const figures = h("div", {});
  const consent = h("div", {});
  root.append(h("section", { class: "panel", "aria-labelledby": "sources-h" }, h("h2", { id: "sources-h" }, "Sources"), fresh.el, alert, sources.el, figures, consent));
  root.append(testPanel());

  const yesNo = (v) => (v === true ? "yes" : v === false ? "no" : "—");
  let consentShown = "";
  poll(signal, async () => {
    let r;
    try {
      r = await call("GET", "/presence-tracking", { signal });
      clearErrors(root, alert);
    } catch (e) {
      if (e.status === 403 || e.status === 404) say(alert, "error", describe(e));
      throw e;
    }
    const d = r.data;
    syncRows(sources.tbody, d.sources || [], (s) => s.source, (tr, s) => {
      const kind = s.state === "ok" ? "ok" : s.state === "failing" ? "bad" : "neutral";
      const err = s.lastError ? `${s.lastError.reason}: ${s.lastError.message}${s.lastError.at ? " (" + fmtTime(s.lastError.at) + ")" : ""}` : "—";
      setCells(tr, labels, [
        SOURCE_NAMES[s.source] || s.source,
        s.upn || "—",
        [s.state, () => badge(s.state, kind)],
        yesNo(s.invitedAsGuest),
        yesNo(s.permissionGranted),
        fmtTime(s.lastSuccessAt),
        err,
        s.pausedUntil ? fmtTime(s.pausedUntil) : "—",
      ]);
    });
    clear(figures,
      h("p", {}, d.trackOverGuestAccounts ? "This tenant is tracked over the guest presence accounts (extended presence)." : "This tenant does not track over guest accounts: presence is read with the application permission (basic)."),
      h("p", { class: "hint" }, `A reading older than ${d.staleAfterSeconds} s is never routed. Shards: ${d.shards}.`),
      pollFigures("Last poll", d.lastPoll),
      pollFigures("Last fanned-out shard", d.lastShardPoll),
      d.notifications ? notificationFigures(d.notifications) : null);
    const urls = `${d.adminConsentUrl}|${d.applicationConsentUrl}`;
    if (urls !== consentShown) {
      consentShown = urls;
      clear(consent, h("h3", {}, "Grant Permission"),
        consentRow("Delegated (presence accounts)", d.adminConsentUrl),
        consentRow("Application (fallback)", d.applicationConsentUrl));
    }
  }, fresh);
}

function consentRow(label, url) {
  if (!url) return h("p", { class: "hint" }, `${label}: no presence app is configured.`);
  return h("div", { class: "row" }, h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label), copyButton("Copy", () => url, label + " consent link"));
}

function pollFigures(title, p) {
  if (!p) return h("p", { class: "hint" }, `${title}: none yet.`);
  const items = [
    ["started", fmtTime(p.startedAt)], ["took", `${p.durationMs} ms`], ["users", p.users], ["changed", p.changed],
    ["Graph calls", p.calls], ["errors", p.errors], ["throttled", p.throttled],
    ["shards confirmed", `${p.shardsConfirmed}/${p.shards}`], ["left", p.shardsLeft], ["fanned out", p.shardsFannedOut],
    ["sources", (p.sources || []).join(", ") || "—"],
  ];
  return h("div", {}, h("h3", {}, `${title} (${p.kind})`),
    h("ul", { class: "figures" }, items.map(([k, v]) => h("li", {}, `${k}: `, h("b", {}, String(v))))),
    p.error ? h("p", { class: "field-error" }, p.error) : null);
}

// notificationFigures shows the Graph change notifications (SPEC 14):
// whether they are on, how many agents they cover, each subscription.
function notificationFigures(n) {
  const subs = n.subscriptions || [];
  return h("div", {}, h("h3", {}, "Change notifications"),
    h("ul", { class: "figures" },
      [["state", n.state], ["agents covered", n.covered], ["last notification", fmtTime(n.lastNotificationAt)], ["subscriptions", subs.length]]
        .map(([k, v]) => h("li", {}, `${k}: `, h("b", {}, String(v ?? "—"))))),
    subs.length ? h("ul", {}, subs.map((x) => h("li", {}, `Account ${x.account}: ${x.users} users, ${x.state}, expires ${fmtTime(x.expiresAt)}`))) : null,
    n.lastError ? h("p", { class: "field-error" }, `Last error ${fmtTime(n.lastError.at)}: ${n.lastError.message}`) : null);
}

function testPanel() {
  const can = may("Admin");
  const upn = h("input", { type: "text", autocomplete: "off", spellcheck: "false", name: "upn", disabled: !can });
  const account = h("select", { disabled: !can }, h("option", { value: "1" }, "Account 1"), h("option", { value: "2" }, "Account 2"));
  const alert = h("div", { class: "alert", "aria-live": "polite" });
  const result = h("div", { "aria-live": "polite", dataset: { testResult: "" } });
  const btn = h("button", { type: "submit", class: "btn primary", disabled: !can }, "Test");
  const form = h("form", { novalidate: true, "aria-labelledby": "test-h" },
    h("h2", { id: "test-h" }, "Test UPN"),
    h("p", { class: "hint" }, "Reads one user's presence now through a presence account, and updates that account's status."),
    !can ? h("p", { class: "alert info" }, `Your role (${roleNames()}) does not allow testing: it needs Switchboard.Admin.`) : null,
    h("div", { class: "grid" }, field({ label: "User principal name", name: "upn", input: upn }), field({ label: "Through", name: "account", input: account })),
    h("div", { class: "row" }, btn), alert, result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form, alert);
    clear(result);
    btn.disabled = true;
    try {
      const r = await call("POST", "/presence-tracking/test", { body: { upn: upn.value.trim(), account: Number(account.value) } });
      const d = r.data;
      if (d.ok) {
        const p = d.presence || {};
        clear(result, h("p", { class: "alert ok", role: "status" },
          `${d.user?.displayName || d.upn} (${d.user?.userPrincipalName || d.upn}): `,
          h("b", { dataset: { availability: p.availability } }, p.availability), ` / ${p.activity}`, p.outOfOffice ? " (out of office)" : "",
          ` — read through ${d.source}${d.extended ? " (extended)" : ""} at ${fmtTime(d.readAt)}.`));
      } else {
        say(alert, "error", `Failed (${d.error?.reason}): ${d.error?.message}`);
      }
    } catch (err) {
      showError(form, alert, err);
    } finally {
      btn.disabled = !can;
    }
  });
  return h("section", { class: "panel" }, form);
}
