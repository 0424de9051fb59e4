// The page's one feed of run events (GET /api/admin/scripts/runs/events): every run's
// creation, start and end, from any process. Views subscribe; the scripts store keeps
// each script's last run from it, so the sidebar follows too.
//
// EventSource reconnects by itself; when it gives up (an error answer) we retry with a
// backoff. After any reconnect subscribers get {type: "resync"}: events may have been
// missed while disconnected, so lists reload. Whether the feed is connected is told
// apart (onConnection): the page says so when the server stays unreachable.
import { api } from "./api.js";
import { parseTime } from "./format.js";

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class RunEvents {
  constructor(store) {
    this.store = store;
    this.listeners = new Set();
    this.connectionListeners = new Set();
    this.up = null; // null until the first answer or failure
    this.retryMs = RETRY_MIN_MS;
    this.opened = false;
    this.connect();
  }

  /** fn({type: "run", run}) for each event, fn({type: "resync"}) after a reconnect; returns unsubscribe. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of [...this.listeners]) fn(change);
  }

  /** fn(up) each time the feed connects (true) or loses its connection (false); returns unsubscribe. */
  onConnection(fn) {
    this.connectionListeners.add(fn);
    return () => this.connectionListeners.delete(fn);
  }

  setConnected(up) {
    if (up === this.up) return;
    this.up = up;
    for (const fn of [...this.connectionListeners]) fn(up);
  }

  connect() {
    const es = new EventSource(api.runEventsUrl());
    this.es = es;
    es.onopen = () => {
      this.retryMs = RETRY_MIN_MS;
      this.setConnected(true);
      if (this.opened) {
        this.store.refresh();
        this.emit({ type: "resync" });
      }
      this.opened = true;
    };
    es.addEventListener("run", (e) => {
      let run;
      try {
        run = JSON.parse(e.data);
      } catch {
        return;
      }
      this.noteLastRun(run);
      this.emit({ type: "run", run });
    });
    es.onerror = () => {
      this.setConnected(false);
      if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    };
  }

  /** The sidebar shows each script's latest run: take this one if it is not older. */
  noteLastRun(run) {
    const script = this.store.byId(run.scriptId);
    if (!script) return;
    const last = script.lastRun;
    if (last && last.id !== run.id && (parseTime(last.createdAt) ?? 0) > (parseTime(run.createdAt) ?? 0)) return;
    this.store.upsert({ id: run.scriptId, lastRun: { id: run.id, status: run.status, createdAt: run.createdAt, finishedAt: run.finishedAt } });
  }

  close() {
    this.es?.close();
  }
}
