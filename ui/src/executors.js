// /admin/scripts/executors: the processes executing runs (serve with its worker, worker),
// from GET /api/admin/executors. Kept live: read again every few seconds while the page
// is visible, and at once when a run starts or ends (the run-events feed).
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { formatDateTime, formatRelative, parseTime } from "./format.js";

const REFRESH_MS = 3000;

/** "4 s ago" for the recent past (heartbeats come every few seconds), else the usual relative time. */
export function formatAgo(iso, now = Date.now()) {
  const t = parseTime(iso);
  if (t === null) return "—";
  const s = Math.max(0, Math.round((now - t) / 1000));
  return s < 120 ? `${s} s ago` : formatRelative(iso, now);
}

export class ExecutorsView {
  constructor({ app }) {
    this.app = app;
    this.gen = 0;
    this.timer = null;
    this.unsubscribe = null;
    this.tbody = h("tbody");
    this.info = h("p.muted.history-info", { role: "status" });
    this.summary = h("div.view-subtitle.muted", "Processes that execute runs on this database");
    this.tableWrap = h(
      "div.table-wrap",
      h(
        "table.runs-table.executors-table",
        h("thead", h("tr", ["Executor", "Host", "PID", "Started", "Last heartbeat", "State", "Running", "Runs"].map((t) => h("th", { scope: "col" }, t)))),
        this.tbody,
      ),
    );
    this.el = h(
      "section.view.executors-view",
      h("header.view-head", h("div.view-head-text", h("a.back-link", { href: "/admin/scripts", "data-link": true }, "‹ Scripts"), h("h1.view-title", "Executors"), this.summary)),
      h("div.view-body", this.tableWrap, this.info),
    );
  }

  async mount() {
    document.title = "Executors · Scriptbox";
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.load();
    }, REFRESH_MS);
    this.unsubscribe = this.app.runEvents?.subscribe(() => this.load()) || null;
    await this.load();
  }

  async load() {
    const gen = ++this.gen;
    try {
      const data = await api.listExecutors();
      if (gen !== this.gen) return;
      const executors = data.executors || [];
      replace(this.tbody);
      for (const executor of executors) this.tbody.appendChild(this.row(executor));
      this.tableWrap.hidden = !executors.length;
      const alive = executors.filter((e) => e.state === "alive");
      const running = alive.reduce((n, e) => n + e.running, 0);
      const slots = alive.reduce((n, e) => n + e.slots, 0);
      const limit = data.clusterMaxRuns ? `, at most ${data.clusterMaxRuns} across the cluster` : "";
      this.summary.textContent = `${alive.length} alive · ${running} of ${slots} slots busy${limit} · gone after ${data.leaseSeconds} s without a heartbeat`;
      this.info.textContent = executors.length ? "" : "No executor is registered: start `serve` (without --no-worker) or `worker`.";
    } catch (err) {
      if (gen === this.gen) this.info.textContent = `Could not load the executors: ${err.message}`;
    }
  }

  row(executor) {
    const now = Date.now();
    const runs = executor.runs.length
      ? executor.runs.map((id) => h("a.mono.executor-run", { href: `/admin/scripts/runs/${id}`, "data-link": true }, id.slice(-8)))
      : "—";
    return h(
      "tr.executor-row",
      { dataset: { state: executor.state, id: executor.id } },
      h("td", h("span.mono", executor.id), h("span.muted.executor-role", ` ${executor.role}`)),
      h("td", executor.host),
      h("td.mono", String(executor.pid)),
      h("td", { title: executor.startedAt || "" }, formatDateTime(executor.startedAt), h("span.muted.rel", ` · ${formatRelative(executor.startedAt, now)}`)),
      h("td.executor-heartbeat", { title: executor.heartbeatAt || "" }, formatAgo(executor.heartbeatAt, now)),
      h("td", h(`span.executor-state.state-${executor.state}`, executor.state)),
      h("td.executor-load", `${executor.running} / ${executor.slots}`),
      h("td.executor-runs", runs),
    );
  }

  destroy() {
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.gen += 1;
  }
}
