// Run history tables (per script and overall) with "load more" paging on the `before`
// cursor from GET /api/admin/scripts/runs.
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { formatDateTime, formatDuration, formatExitCode, formatRelative, runDuration, snapshotOf } from "./format.js";
import { RUN_STATUSES } from "./vocabulary.js";
import { statusBadge, statusLabel } from "./widgets.js";

const TRIGGERS = [["manual", "Manual (admin page)"], ["api", "API"], ["schedule", "Schedule"]];

export class RunHistory {
  /**
   * scriptId: only this script's runs (no script column); scriptName(id, run) names a run's
   * script for the overall view; pageSize: rows per page.
   */
  constructor({ scriptId = null, scriptName = null, pageSize = 25, showFilter = true, showMore = true, navigate } = {}) {
    this.scriptId = scriptId;
    this.showMore = showMore;
    this.scriptName = scriptName;
    this.pageSize = pageSize;
    this.navigate = navigate;
    this.status = "";
    this.trigger = "";
    this.cursor = null;
    this.loading = false;
    this.gen = 0;
    this.tbody = h("tbody");
    this.more = h("button.btn", { type: "button", hidden: true, onclick: () => this.load(false) }, "Load older runs");
    this.info = h("p.muted.history-info", { role: "status" });
    const filterId = `hist-status-${Math.random().toString(36).slice(2)}`;
    const triggerId = `hist-trigger-${Math.random().toString(36).slice(2)}`;
    this.filter = showFilter
      ? h(
          "div.history-filter",
          h("label", { for: filterId }, "Status"),
          h(
            "select",
            { id: filterId, onchange: (e) => { this.status = e.target.value; this.load(true); } },
            h("option", { value: "" }, "All"),
            RUN_STATUSES.map((s) => h("option", { value: s }, statusLabel(s))),
          ),
          h("label", { for: triggerId }, "Trigger"),
          h(
            "select.history-trigger",
            { id: triggerId, onchange: (e) => { this.trigger = e.target.value; this.load(true); } },
            h("option", { value: "" }, "All"),
            TRIGGERS.map(([v, l]) => h("option", { value: v }, l)),
          ),
        )
      : null;
    this.thead = h("thead");
    this.renderHead();
    this.el = h(
      "div.history",
      this.filter,
      (this.tableWrap = h("div.table-wrap", h("table.runs-table", this.thead, this.tbody))),
      this.info,
      h("div.history-more", this.more),
    );
  }

  /** The header cells match the rows: a "Script" column only for the overall view. */
  renderHead() {
    const head = ["Status", this.scriptId ? null : "Script", "Trigger", "By", "Started", "Duration", "Exit"].filter(Boolean);
    replace(this.thead, h("tr", head.map((t) => h("th", { scope: "col" }, t))));
  }

  /** A new script got its id: from now on this is its history (no "Script" column). */
  setScriptId(scriptId) {
    this.scriptId = scriptId;
    this.renderHead();
    replace(this.tbody);
  }

  /**
   * Follows the page's run events: a run of this list that changed is redrawn in place,
   * a new one (or a resync) reloads the first page, unless older pages are open. Relative
   * times tick. Returns the function that stops it.
   */
  follow(runEvents) {
    let timer = 0;
    const reload = () => {
      clearTimeout(timer);
      // Several events in a burst cost one request.
      timer = setTimeout(() => {
        if (this.cursor === null || this.tbody.children.length <= this.pageSize) this.load(true);
      }, 250);
    };
    const off = runEvents.subscribe((change) => {
      if (change.type === "resync") return reload();
      const run = change.run;
      if (this.scriptId && run.scriptId !== this.scriptId) return;
      const matches = (!this.status || this.status === run.status) && (!this.trigger || this.trigger === run.trigger);
      const row = this.tbody.querySelector(`tr[data-run-id="${CSS.escape(run.id)}"]`);
      if (row && matches) row.replaceWith(this.row(run));
      else if (row) row.remove(); // it left the filtered status
      else if (matches) reload();
    });
    const ticker = setInterval(() => this.tickTimes(), 5000);
    return () => {
      off();
      clearTimeout(timer);
      clearInterval(ticker);
    };
  }

  /** Redraws the "· 15 sec. ago" of every row from its time. */
  tickTimes() {
    for (const el of this.tbody.querySelectorAll("time[datetime]")) {
      const rel = el.nextElementSibling;
      if (rel?.classList.contains("rel")) rel.textContent = ` · ${formatRelative(el.getAttribute("datetime"))}`;
    }
  }

  /** (Re)loads; reset=true starts from the newest run. */
  async load(reset = true) {
    if (this.loading && !reset) return;
    const gen = reset ? ++this.gen : this.gen;
    this.loading = true;
    this.more.disabled = true;
    if (reset) this.cursor = null;
    try {
      const data = await api.listRuns({
        scriptId: this.scriptId || undefined,
        status: this.status || undefined,
        trigger: this.trigger || undefined,
        limit: this.pageSize,
        before: reset ? undefined : this.cursor,
      });
      if (gen !== this.gen) return;
      const runs = (data && data.runs) || [];
      if (reset) replace(this.tbody);
      for (const run of runs) this.tbody.appendChild(this.row(run));
      this.cursor = data ? data.nextBefore || null : null;
      this.more.hidden = !this.showMore || !this.cursor;
      const none = !this.tbody.children.length;
      this.info.textContent = none ? (this.status || this.trigger ? "No runs match the filter." : "No runs yet.") : "";
      this.tableWrap.hidden = none;
    } catch (err) {
      if (gen !== this.gen) return;
      this.info.textContent = `Could not load runs: ${err.message}`;
    } finally {
      if (gen === this.gen) {
        this.loading = false;
        this.more.disabled = false;
      }
    }
  }

  row(run) {
    const href = `/admin/scripts/runs/${run.id}`;
    const started = run.startedAt || run.createdAt;
    const dur = runDuration(run);
    const name = this.scriptId ? null : (this.scriptName?.(run.scriptId, run) || snapshotOf(run).name || run.scriptId);
    const tr = h(
      "tr.run-row",
      { dataset: { runId: run.id, status: run.status }, onclick: (e) => {
        if (e.target.closest("a")) return;
        this.navigate?.(href);
      } },
      h("td", h("a", { href, "data-link": true, "aria-label": `Run ${statusLabel(run.status)} ${formatDateTime(started)}` }, statusBadge(run.status))),
      name !== null ? h("td.cell-script", name) : null,
      h("td", h(`span.trigger.trigger-${run.trigger || "none"}`, { title: run.meta && run.meta.scheduledFor ? `Scheduled for ${run.meta.scheduledFor}` : undefined }, run.trigger || "—")),
      h("td.cell-by", run.meta?.requestedBy || "—"),
      h("td", { title: started || "" }, h("time", { datetime: started || "" }, formatDateTime(started)), h("span.muted.rel", ` · ${formatRelative(started)}`)),
      h("td.num", dur === null ? "—" : formatDuration(dur)),
      h("td.num", formatExitCode(run.exitCode)),
    );
    return tr;
  }
}
