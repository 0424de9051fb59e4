// JSON API client for /api/admin/*. Every error becomes an ApiError carrying the server's
// {"error": {code, message, fields}} body (or a synthesized one for network failures).

const BASE = "/api/admin/scripts";

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "error";
    this.fields = fields || {};
  }
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `Cannot reach the server (${err.message})`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code, e.message || `${res.status} ${res.statusText}`, e.fields);
  }
  return data;
}

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

const enc = encodeURIComponent;

export const api = {
  listScripts: (q) => request("GET", `${BASE}${qs({ q })}`),
  getScript: (id) => request("GET", `${BASE}/${enc(id)}`),
  createScript: (doc) => request("POST", BASE, doc),
  updateScript: (id, doc) => request("PUT", `${BASE}/${enc(id)}`, doc),
  deleteScript: (id) => request("DELETE", `${BASE}/${enc(id)}`),
  runScript: (id, params) => request("POST", `${BASE}/${enc(id)}/run`, params ? { trigger: "manual", params } : { trigger: "manual" }),
  listRuns: (params) => request("GET", `${BASE}/runs${qs(params)}`),
  getRun: (runId) => request("GET", `${BASE}/runs/${enc(runId)}`),
  cancelRun: (runId) => request("POST", `${BASE}/runs/${enc(runId)}/cancel`, {}),
  deleteRun: (runId) => request("DELETE", `${BASE}/runs/${enc(runId)}`),
  browserResult: (runId, result) => request("POST", `${BASE}/runs/${enc(runId)}/browser-result`, result),
  logUrl: (runId) => `${BASE}/runs/${enc(runId)}/log`,
  getChunks: (runId, after = -1) => request("GET", `${BASE}/runs/${enc(runId)}/chunks${qs({ after })}`),
  streamUrl: (runId) => `${BASE}/runs/${enc(runId)}/stream`,
  runEventsUrl: () => `${BASE}/runs/events`,
  schedulePreview: (cron, timezone) => request("GET", `/api/admin/schedule-preview${qs({ cron, timezone })}`),
  listTokens: () => request("GET", "/api/admin/tokens"),
  createToken: (doc) => request("POST", "/api/admin/tokens", doc),
  revokeToken: (id) => request("DELETE", `/api/admin/tokens/${enc(id)}`),
  listAudit: (params) => request("GET", `/api/admin/audit${qs(params)}`),
  listExecutors: () => request("GET", "/api/admin/executors"),
  listNotifications: () => request("GET", "/api/admin/notifications"),
  createNotification: (doc) => request("POST", "/api/admin/notifications", doc),
  updateNotification: (id, doc) => request("PUT", `/api/admin/notifications/${enc(id)}`, doc),
  deleteNotification: (id) => request("DELETE", `/api/admin/notifications/${enc(id)}`),
  testNotification: (id) => request("POST", `/api/admin/notifications/${enc(id)}/test`, {}),
  listVersions: (id, params) => request("GET", `${BASE}/${enc(id)}/versions${qs(params)}`),
  getVersion: (id, n) => request("GET", `${BASE}/${enc(id)}/versions/${enc(n)}`),
  restoreVersion: (id, n) => request("POST", `${BASE}/${enc(id)}/versions/${enc(n)}/restore`, {}),
};

/** Normalises the list endpoint's answer (a bare array or {scripts: [...]}). */
export function scriptsOf(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.scripts)) return data.scripts;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}
