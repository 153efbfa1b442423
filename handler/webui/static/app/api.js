// The API client: every call of the page goes through call(), which adds
// the caller's token (unless API_AUTH=none), reads problem+json errors into
// ApiError, and knows the tenant the page works on.

export const session = {
  auth: "none",      // "entra" or "none"
  tenant: "",        // the tenant every /api/tenants/{t} route is called for
  roles: null,       // the token's app roles; null: every call is allowed (API_AUTH=none)
  user: "",          // who is signed in, for the header
  getToken: null,    // async () => access token
  apiBase: "/api",
};

export class ApiError extends Error {
  constructor(status, problem, method, path) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.field = problem.field || "";
    this.method = method;
    this.path = path;
  }
  // notDeployed: the route does not exist in this deployment (a capability
  // of a later version), as opposed to a missing resource.
  get notDeployed() {
    return this.status === 404 && this.problem.type === "not-found" && /no such route/i.test(this.problem.title || "");
  }
}

// call("GET", "/settings") calls /api/tenants/{t}/settings; a path starting
// with "//" is taken from the API root ("//health" → /api/health).
export async function call(method, path, { body, contentType, ifMatch, signal } = {}) {
  const url = path.startsWith("//") ? session.apiBase + path.slice(1)
    : `${session.apiBase}/tenants/${encodeURIComponent(session.tenant)}${path}`;
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  if (session.getToken) headers.Authorization = "Bearer " + (await session.getToken());
  let resp;
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { type: "network", title: "Switchboard did not answer (network error or the app is down)." }, method, path);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const problem = data && typeof data === "object" ? data : { title: `HTTP ${resp.status}` };
    throw new ApiError(resp.status, problem, method, path);
  }
  return { status: resp.status, data, etag: resp.headers.get("ETag") || "" };
}

// describe turns an error into the sentence the page shows.
export function describe(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  const p = err.problem;
  switch (true) {
    case err.status === 403:
      return `Your role does not allow this${p.title ? ` (${p.title})` : ""}.`;
    case err.status === 401:
      return `Your sign-in is not valid for this (${p.title || "unauthorized"}): sign in again.`;
    case err.notDeployed:
      return "This Switchboard does not offer this yet (the route is not deployed).";
    case err.status === 412:
      return "Someone else changed this since it was loaded: reload, then make your change again.";
    case err.status === 0:
      return p.title;
    case err.status >= 500:
      return `${p.title || "Switchboard failed"} (HTTP ${err.status}); try again.`;
    default:
      return (p.title || `HTTP ${err.status}`) + (p.detail ? ` ${p.detail}` : "");
  }
}

// may tells whether the signed-in caller holds one of the roles (SPEC
// section 9). The server decides; this only keeps the page from offering
// what would be refused.
export function may(...roles) {
  if (session.roles === null) return true;
  return roles.some((r) => session.roles.includes("Switchboard." + r));
}

export function roleNames() {
  if (session.roles === null) return "every role (API_AUTH=none)";
  const names = session.roles.filter((r) => r.startsWith("Switchboard.")).map((r) => r.slice(12));
  return names.length ? names.join(", ") : "no Switchboard role";
}
