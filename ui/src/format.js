// Formatting of times, durations and statuses for display.

export { isActive } from "./vocabulary.js";

export function parseTime(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min" */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** Duration of a run: finished-started, or now-started while it runs. */
export function runDuration(run, now = Date.now()) {
  const start = parseTime(run.startedAt);
  if (start === null) return null;
  const end = parseTime(run.finishedAt);
  return (end === null ? now : end) - start;
}

const rtf = typeof Intl !== "undefined" && Intl.RelativeTimeFormat
  ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" })
  : null;

/** "just now", "5 min ago", "yesterday", then a date. */
export function formatRelative(iso, now = Date.now()) {
  const t = parseTime(iso);
  if (t === null) return "—";
  const diff = (t - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 10) return "just now";
  if (!rtf) return new Date(t).toLocaleString();
  if (abs < 60) return rtf.format(Math.round(diff), "second");
  if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), "hour");
  if (abs < 7 * 86400) return rtf.format(Math.round(diff / 86400), "day");
  return new Date(t).toLocaleDateString();
}

export function formatDateTime(iso) {
  const t = parseTime(iso);
  if (t === null) return "—";
  const d = new Date(t);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${d.toLocaleDateString()} ${time}`;
}

/** A run's exit code for display: the number, or "—" when the process did not exit by itself. */
export function formatExitCode(code) {
  return code === null || code === undefined ? "—" : String(code);
}

/** Human hint for a timeout in ms ("= 5 min"). */
export function timeoutHint(value) {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || String(value).trim() === "") return "";
  return `= ${formatDuration(n)}`;
}

/** The script name recorded with a run (its snapshot), if any. */
export function snapshotOf(run) {
  const meta = (run && run.meta) || {};
  return meta.snapshot || meta.definition || meta;
}
