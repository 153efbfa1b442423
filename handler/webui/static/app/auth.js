// Sign-in. With API_AUTH=none nobody signs in and a picker chooses the
// tenant. Otherwise MSAL.js (authorization code with PKCE, the SPA client
// UI_CLIENT_ID) signs the user in against AZURE_AUTHORITY_HOST and gets
// tokens for the API's scope; the tenant is the signed-in user's.
import { session } from "./api.js";
import { h, clear, newId } from "./dom.js";

const TENANT_KEY = "switchboard.tenant";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// start sets session up; it returns false when the page cannot go on (not
// signed in yet: the header offers the sign-in button).
export async function start(config, uiBase, whoEl, onTenantChange) {
  session.auth = config.auth;
  if (config.auth === "none") {
    session.roles = null;
    const fromUrl = new URLSearchParams(location.search).get("tenant") || "";
    let stored = "";
    try { stored = localStorage.getItem(TENANT_KEY) || ""; } catch { /* storage off */ }
    session.tenant = [fromUrl, stored, ...(config.tenants || [])].find((t) => GUID.test(t)) || "";
    renderPicker(config, whoEl, onTenantChange);
    return true;
  }
  if (!config.clientId) {
    clear(whoEl, h("span", {}, "Sign-in is not configured"));
    throw new Error("This deployment has no UI_CLIENT_ID: the page cannot sign anyone in. The operator sets UI_CLIENT_ID to the SPA app registration (README, App registration).");
  }
  await loadScript(new URL("../vendor/msal/msal-browser.min.js", import.meta.url));
  const msal = globalThis.msal;
  const redirectUri = new URL("redirect.html", uiBase).href;
  const pca = new msal.PublicClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      knownAuthorities: config.knownAuthorities,
      redirectUri,
      postLogoutRedirectUri: uiBase.href,
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await pca.initialize();
  const result = await pca.handleRedirectPromise();
  const account = result?.account || pca.getActiveAccount() || pca.getAllAccounts()[0] || null;
  const request = { scopes: config.scopes };
  if (!account) {
    clear(whoEl, h("button", { type: "button", class: "btn", onclick: () => pca.loginRedirect({ ...request, redirectStartPage: location.href }) }, "Sign in"));
    return false;
  }
  pca.setActiveAccount(account);
  session.tenant = account.tenantId || account.idTokenClaims?.tid || "";
  session.user = account.username || account.name || "";
  session.getToken = async () => {
    try {
      const r = await pca.acquireTokenSilent({ ...request, account });
      session.roles = rolesOf(r.accessToken);
      return r.accessToken;
    } catch (e) {
      if (e instanceof msal.InteractionRequiredAuthError) {
        await pca.acquireTokenRedirect({ ...request, account, redirectStartPage: location.href });
      }
      throw e;
    }
  };
  await session.getToken(); // learns the roles before the first page renders
  clear(whoEl,
    h("span", {}, session.user),
    h("button", { type: "button", class: "btn small", onclick: () => pca.logoutRedirect({ account }) }, "Sign out"));
  return true;
}

// rolesOf reads the app roles from the access token, to show the caller
// what its role does not allow; the API checks them.
function rolesOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
    return Array.isArray(claims.roles) ? claims.roles : [];
  } catch {
    return [];
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = h("script", { src: String(src) });
    s.addEventListener("load", resolve);
    s.addEventListener("error", () => reject(new Error("MSAL.js could not be loaded")));
    document.head.append(s);
  });
}

function renderPicker(config, whoEl, onTenantChange) {
  const id = newId("tenant");
  const listId = id + "-list";
  const input = h("input", { id, type: "text", list: listId, value: session.tenant, size: 38, spellcheck: "false", autocomplete: "off", "aria-describedby": id + "-error" });
  const err = h("span", { id: id + "-error", class: "field-error", "aria-live": "polite" });
  const use = () => {
    const t = input.value.trim().toLowerCase();
    if (!GUID.test(t)) {
      input.setAttribute("aria-invalid", "true");
      err.textContent = "A tenant id is a GUID.";
      return;
    }
    input.removeAttribute("aria-invalid");
    err.textContent = "";
    session.tenant = t;
    try { localStorage.setItem(TENANT_KEY, t); } catch { /* storage off */ }
    const url = new URL(location.href);
    url.searchParams.set("tenant", t);
    history.replaceState(null, "", url);
    onTenantChange();
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") use(); });
  clear(whoEl,
    h("span", { class: "badge warn" }, "API_AUTH=none"),
    h("label", { for: id }, "Tenant"),
    input,
    h("datalist", { id: listId }, (config.tenants || []).map((t) => h("option", { value: t }))),
    h("button", { type: "button", class: "btn small", onclick: use }, "Use"),
    err);
}
