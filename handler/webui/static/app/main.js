// The page's shell: reads config.json, signs in (or picks the tenant with
// API_AUTH=none), and shows one of the five pages by the URL's #/fragment.
import { session } from "./api.js";
import { start } from "./auth.js";
import { h, clear } from "./dom.js";
import * as settings from "./pages/settings.js";
import * as presence from "./pages/presence.js";
import * as services from "./pages/services.js";
import * as live from "./pages/live.js";
import * as outbound from "./pages/outbound.js";

const pages = { settings, presence, services, live, outbound };
// This module is served from /api/ui/v/<version>/app/main.js.
const uiBase = new URL("../../../", import.meta.url);
session.apiBase = new URL("../", uiBase).pathname.replace(/\/$/, "");

const main = document.getElementById("main");
let current = null; // AbortController of the page shown

async function show() {
  current?.abort();
  current = new AbortController();
  const [name, ...params] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = pages[name] ? name : "settings";
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clear(main);
  if (!session.tenant) {
    main.append(h("h1", {}, "Choose a tenant"), h("p", {}, "Enter the Entra tenant id to administer in the Tenant box above."));
    return;
  }
  try {
    await pages[page].render(main, { signal: current.signal, params });
  } catch (e) {
    if (e.name === "AbortError") return;
    main.append(h("p", { class: "alert error", role: "alert" }, "This page failed: " + (e && e.message ? e.message : e)));
  }
  const heading = main.querySelector("h1");
  document.title = (heading ? heading.textContent + " — " : "") + "Switchboard";
}

async function boot() {
  let config;
  try {
    const resp = await fetch(new URL("config.json", uiBase), { cache: "no-store" });
    if (!resp.ok) throw new Error(`config.json: HTTP ${resp.status}`);
    config = await resp.json();
  } catch (e) {
    clear(main, h("p", { class: "alert error", role: "alert" }, "Switchboard did not answer: " + e.message));
    return;
  }
  try {
    if (!(await start(config, uiBase, document.getElementById("who"), show))) {
      clear(main, h("h1", {}, "Sign in"), h("p", {}, "Sign in with your work account to administer your tenant's Switchboard."));
      return;
    }
  } catch (e) {
    clear(main, h("p", { class: "alert error", role: "alert" }, e && e.message ? e.message : String(e)));
    return;
  }
  window.addEventListener("hashchange", show);
  show();
}

boot();
