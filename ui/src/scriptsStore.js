// The one list of scripts the page knows (with each one's last run). Views read it
// and subscribe to its changes instead of asking each other; the sidebar is one view.
import { api, scriptsOf } from "./api.js";

export class ScriptsStore {
  constructor() {
    this.scripts = [];
    this.loaded = false;
    this.error = null;
    this.listeners = new Set();
  }

  /** Calls `fn(change)` on every change: {type: "refreshed"|"updated"|"removed", doc?, source?}.
   *  Returns the function that unsubscribes. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of [...this.listeners]) fn(change);
  }

  async refresh() {
    try {
      this.scripts = scriptsOf(await api.listScripts());
      this.loaded = true;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.emit({ type: "refreshed" });
  }

  byId(id) {
    return this.scripts.find((s) => s.id === id) || null;
  }

  /** Updates one script in place (after a save, a toggle or a run) without a round trip;
   *  `source` tells subscribers why (e.g. "toggle"). */
  upsert(doc, source = null) {
    const i = this.scripts.findIndex((s) => s.id === doc.id);
    if (i === -1 && !doc.name) return; // a partial update for a script we do not list
    if (i === -1) this.scripts.push(doc);
    else this.scripts[i] = { ...this.scripts[i], ...doc };
    this.emit({ type: "updated", doc: this.byId(doc.id), source });
  }

  remove(id) {
    this.scripts = this.scripts.filter((s) => s.id !== id);
    this.emit({ type: "removed", doc: { id } });
  }
}
