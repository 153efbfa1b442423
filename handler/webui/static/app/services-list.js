// The tenant's services, for the pages that work per service. GET
// /services is SPEC section 10's; where the deployment does not have it
// yet, the services opened on this browser stand in, each read again.
import { call, session } from "./api.js";

const key = () => `switchboard.services.${session.tenant}`;

function remembered() {
  try { return JSON.parse(localStorage.getItem(key()) || "[]").filter((s) => typeof s === "string"); } catch { return []; }
}

export function remember(id) {
  const ids = remembered().filter((s) => s !== id);
  ids.unshift(id);
  try { localStorage.setItem(key(), JSON.stringify(ids.slice(0, 50))); } catch { /* storage off */ }
}

export function forget(id) {
  try { localStorage.setItem(key(), JSON.stringify(remembered().filter((s) => s !== id))); } catch { /* storage off */ }
}

// listServices returns {services: [{id, name, memberCount, ...}], note}.
export async function listServices(signal) {
  try {
    const r = await call("GET", "/services", { signal });
    const d = r.data;
    const list = Array.isArray(d) ? d : d.value || d.services || [];
    return { services: list.map((s) => ({ ...s, id: s.id || s.serviceId })), note: "" };
  } catch (e) {
    if (!e.notDeployed) throw e;
  }
  const services = [];
  for (const id of remembered()) {
    try {
      services.push((await call("GET", `/services/${encodeURIComponent(id)}`, { signal })).data);
    } catch (e) {
      if (e.name === "AbortError") throw e;
      if (e.status === 404) forget(id);
    }
  }
  return { services, note: "This Switchboard cannot list services yet: shown are the services opened or created on this browser. Open another by its id." };
}
