// The words the admin page shares with the server (scriptbox/vocabulary.py): run
// statuses, the default timeout. One place, so a new status is added once.

export const ACTIVE_STATUSES = ["queued", "running"];
export const FINISHED_STATUSES = ["succeeded", "failed", "canceled", "timed_out"];
export const RUN_STATUSES = [...ACTIVE_STATUSES, ...FINISHED_STATUSES];
export const DEFAULT_TIMEOUT_MS = 300_000;

const ACTIVE = new Set(ACTIVE_STATUSES);

export function isActive(status) {
  return ACTIVE.has(status);
}
