// What the run page says about a run: facts with human labels, what ran (from the
// snapshot the server recorded when it started), and the details of meta.
import { h } from "./dom.js";
import { formatDateTime, formatDuration, formatExitCode, runDuration, snapshotOf } from "./format.js";
import { outputModeFact } from "./outputMode.js";
import { versionHref } from "./versions.js";

// Labels of the meta keys the server writes (docs/engine.md); unknown keys are shown too,
// their camelCase split into words. requestedBy and snapshot are shown elsewhere.
const META_LABELS = {
  node: "Executed on",
  pid: "Process id",
  signal: "Signal",
  error: "Reason",
  outputBytes: "Output size",
  logTruncated: "Stored log truncated",
  scheduledFor: "Scheduled for",
  catchUp: "Catch-up run",
  version: "Script version",
  executor: "Executor",
};
const SHOWN_ELSEWHERE = new Set(["requestedBy", "snapshot", "definition"]);

export function formatBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u += 1;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function humanKey(key) {
  const words = key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[._]/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function metaValue(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (key === "outputBytes") return formatBytes(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (key === "scheduledFor") return formatDateTime(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** [label, text] rows of a run's meta, human labels, no duplicates of the facts above. */
export function metaRows(run) {
  const meta = run.meta && typeof run.meta === "object" ? run.meta : {};
  const rows = [["Run id", run.id]];
  for (const [key, value] of Object.entries(meta)) {
    if (SHOWN_ELSEWHERE.has(key)) continue;
    rows.push([META_LABELS[key] || humanKey(key), metaValue(key, value)]);
  }
  return rows;
}

/** The facts at the top of the run page; the Duration cell is returned to be ticked. */
export function factRows(run) {
  const started = run.startedAt || run.createdAt;
  const dur = runDuration(run);
  return [
    ["Trigger", run.trigger || "—"],
    ["Requested by", run.meta?.requestedBy || "—"],
    ["Created", formatDateTime(run.createdAt)],
    ["Started", formatDateTime(started)],
    ["Finished", formatDateTime(run.finishedAt)],
    ["Duration", dur === null ? "—" : formatDuration(dur)],
    ["Exit code", formatExitCode(run.exitCode)],
  ];
}

/** "What ran": the script as the run recorded it (name, type, runner, timeout, env keys). */
export function whatRan(run) {
  const snap = snapshotOf(run);
  const keys = Array.isArray(snap.envKeys) ? snap.envKeys : null;
  const kind = snap.type && snap.runner && snap.type !== snap.runner ? `${snap.type} · ${snap.runner}` : snap.type || "—";
  const rows = [
    ["Script", snap.name ? `${snap.name}${snap.codeIdentifier ? ` (${snap.codeIdentifier})` : ""}` : "—"],
    ["Type", kind],
    ["Timeout", typeof snap.timeoutMs === "number" ? formatDuration(snap.timeoutMs) : "—"],
    ["Working directory", snap.workingDirectory || "—"],
    ["Output streams", outputModeFact(run)],
    // The version it ran (set when it started): its definition is kept while the run is.
    ["Script version", Number.isInteger(run.meta?.version) && run.scriptId
      ? h("a.version-link", { href: versionHref(run.scriptId, run.meta.version), "data-link": true }, `version ${run.meta.version}`)
      : "—"],
  ];
  const envCell = keys === null
    ? h("dd.muted", "not recorded")
    : keys.length
      ? h("dd", h("ul.env-keys", keys.map((k) => h("li", h("code", k)))))
      : h("dd.muted", "none");
  return [
    ...rows.map(([k, v]) => h("div.fact", h("dt", k), h("dd", v))),
    h("div.fact.fact-wide", h("dt", "Environment variables"), envCell),
  ];
}
