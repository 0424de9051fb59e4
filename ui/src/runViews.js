// /admin/scripts/runs (all runs) and /admin/scripts/runs/<runId> (one run: its live
// output while it runs, its stored output when finished).
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { formatDuration, isActive, runDuration, snapshotOf } from "./format.js";
import { RunHistory } from "./history.js";
import { LogViewer } from "./logViewer.js";
import { factRows, metaRows, whatRan } from "./runFacts.js";
import { RunPanel } from "./runPanel.js";
import { startManualRun } from "./runStarter.js";
import { confirmDialog, emptyState, toast } from "./widgets.js";

export class RunsView {
  constructor({ app }) {
    this.app = app;
    // ?limit=N sets the page size (default 50, the API allows up to 500).
    const limit = Number(new URLSearchParams(location.search).get("limit"));
    this.history = new RunHistory({
      pageSize: Number.isInteger(limit) && limit >= 1 && limit <= 500 ? limit : 50,
      scriptName: (id, run) => app.scripts.byId(id)?.name || snapshotOf(run).name || null,
      navigate: (href) => app.navigate(href),
    });
    this.el = h(
      "section.view.runs-view",
      h("header.view-head", h("div.view-head-text", h("a.back-link", { href: "/admin/scripts", "data-link": true }, "‹ Scripts"), h("h1.view-title", "Run history"), h("div.view-subtitle.muted", "All scripts, newest first"))),
      h("div.view-body", this.history.el),
    );
  }

  mount() {
    document.title = "Runs · Scriptbox";
    this.stopFollowing = this.history.follow(this.app.runEvents);
    return this.history.load(true);
  }

  destroy() {
    this.stopFollowing?.();
  }
}

export class RunView {
  constructor({ runId, app }) {
    this.runId = runId;
    this.app = app;
    // The Duration fact ticks with the panel's elapsed time, from the same clock.
    this.panel = new RunPanel({ showOpenLink: false, onChange: (run) => this.renderFacts(run), onTick: (run) => this.tickDuration(run) });
    // Only a finished run can be deleted (the server answers 409 for an active one).
    this.deleteBtn = h("button.btn.danger-outline", { type: "button", hidden: true, onclick: () => this.deleteRun() }, "Delete run");
    this.title = h("h1.view-title", "Run");
    this.scriptLink = h("a", { "data-link": true });
    this.facts = h("dl.facts");
    this.ran = h("dl.facts.what-ran", { "aria-label": "What ran" });
    this.paramsList = h("dl.facts.run-params-list");
    this.params = h("section.run-params-section", { hidden: true, "aria-label": "Parameters" }, h("h2.section-title", "Parameters"), this.paramsList);
    this.meta = h("details.meta", h("summary", "Details"), h("dl.facts.meta-list"));
    this.againBtn = h("button.btn.primary#run-again", { type: "button", hidden: true, onclick: () => this.runAgain() }, "↻ Run again");
    this.el = h(
      "section.view.run-view",
      h(
        "header.view-head",
        h("div.view-head-text", h("a.back-link", { href: "/admin/scripts/runs", "data-link": true }, "‹ Run history"), this.title, h("div.view-subtitle", this.scriptLink)),
        h("div.view-actions", this.deleteBtn, this.againBtn),
      ),
      h("div.view-body.run-body", this.facts, this.params, h("h2.section-title", "What ran"), this.ran, this.panel.el, this.meta),
    );
  }

  async mount() {
    document.title = "Run · Scriptbox";
    let run;
    try {
      run = await api.getRun(this.runId);
    } catch (err) {
      replace(this.el, emptyState(err.status === 404 ? "Run not found" : "Cannot load the run", err.message, { href: "/admin/scripts/runs", label: "Run history" }));
      return;
    }
    if (this.destroyed) return;
    // The list may still be loading: ask for the definition itself (404: it was deleted).
    let script = this.app.scripts.byId(run.scriptId);
    if (!script) script = await api.getScript(run.scriptId).catch(() => null);
    if (this.destroyed) return;
    const snap = snapshotOf(run);
    const name = script?.name || snap.name || "a deleted script";
    this.title.textContent = `Run of ${name}`;
    document.title = `Run of ${name} · Scriptbox`;
    if (script) {
      this.scriptLink.href = `/admin/scripts/${run.scriptId}`;
      this.scriptLink.textContent = `Open ${script.name}`;
      this.againBtn.hidden = false;
    } else {
      this.scriptLink.removeAttribute("href");
      this.scriptLink.textContent = snap.codeIdentifier ? `${snap.codeIdentifier} (deleted)` : "";
    }
    this.panel.show(run);
  }

  /** Asks, deletes the run and its stored output, then goes back to the run history. */
  async deleteRun() {
    const ok = await confirmDialog({
      title: "Delete this run?",
      message: "The run and its stored output are deleted for good. The script itself stays.",
      confirm: "Delete run",
      danger: true,
    });
    if (!ok || this.destroyed) return;
    this.deleteBtn.disabled = true;
    try {
      await api.deleteRun(this.runId);
    } catch (err) {
      this.deleteBtn.disabled = false;
      if (err.status !== 404) {
        toast(`Delete failed: ${err.message}`, "error");
        return;
      }
    }
    toast("Run deleted");
    this.app.navigate("/admin/scripts/runs");
  }

  /** Starts this run's script again, offering this run's parameters; opens the new run. */
  async runAgain() {
    const run = this.panel.run;
    if (!run || this.againBtn.disabled) return;
    this.againBtn.disabled = true;
    try {
      // The declaration as it is now (it may have changed since this run).
      const script = await api.getScript(run.scriptId);
      const runId = await startManualRun(script, { initial: run.params || {}, again: true });
      if (runId && !this.destroyed) this.app.navigate(`/admin/scripts/runs/${runId}`);
    } catch (err) {
      toast(err.status === 409 ? `Cannot run: ${err.message}` : `Run failed to start: ${err.message}`, "error");
    } finally {
      this.againBtn.disabled = false;
    }
  }

  /** The run's parameters as the server kept them (secret values as ***). */
  renderParams(run) {
    const params = run.params && typeof run.params === "object" ? Object.entries(run.params) : [];
    this.params.hidden = !params.length;
    replace(this.paramsList, params.map(([k, v]) => h(
      "div.fact",
      { dataset: { param: k } },
      h("dt", k),
      h(`dd.mono${v === "***" ? ".muted" : ""}`, typeof v === "string" ? (v === "" ? '""' : v) : JSON.stringify(v)),
    )));
  }

  renderFacts(run) {
    this.deleteBtn.hidden = !run.createdAt || isActive(run.status);
    this.showLogViewer(run);
    this.renderParams(run);
    replace(this.facts, factRows(run).map(([k, v]) => h("div.fact", { dataset: { fact: k } }, h("dt", k), h("dd", v))));
    this.duration = this.facts.querySelector("[data-fact=Duration] dd");
    replace(this.ran, whatRan(run));
    replace(this.meta.querySelector(".meta-list"), metaRows(run).map(([k, v]) => h("div.fact", h("dt", k), h("dd.mono", v))));
  }

  /** A finished run is read in the log viewer (the whole stored log), not the live panel. */
  showLogViewer(run) {
    if (this.logViewer || isActive(run.status) || !run.finishedAt) return;
    this.logViewer = new LogViewer(run.id, run);
    this.panel.output.el.hidden = true;
    this.panel.orderNote.el.classList.add("superseded"); // the log viewer's own note says it
    this.panel.el.after(this.logViewer.el);
    this.logViewer.load();
  }

  tickDuration(run) {
    if (!this.duration || !isActive(run.status)) return;
    const dur = runDuration(run);
    this.duration.textContent = dur === null ? "—" : formatDuration(dur);
  }

  destroy() {
    this.destroyed = true;
    this.panel.destroy();
    this.logViewer?.destroy();
  }
}

export class HomeView {
  constructor({ app }) {
    this.app = app;
    this.history = new RunHistory({
      pageSize: 10,
      showFilter: false,
      showMore: false,
      scriptName: (id, run) => app.scripts.byId(id)?.name || snapshotOf(run).name || null,
      navigate: (href) => app.navigate(href),
    });
    this.history.more.hidden = true;
    this.el = h(
      "section.view.home-view",
      h("header.view-head", h("div.view-head-text", h("h1.view-title", "Scriptbox"), h("div.view-subtitle.muted", "Pick a script on the left, or create one."))),
      h(
        "div.view-body",
        h("div.home-actions", h("a.btn.primary", { href: "/admin/scripts/new", "data-link": true }, "+ New script"), h("a.btn", { href: "/admin/scripts/runs", "data-link": true }, "All runs")),
        h("h2.section-title", "Recent runs"),
        this.history.el,
      ),
    );
  }

  async mount() {
    document.title = "Scripts · Scriptbox";
    // Recent runs follow the run events (and the list's periodic refresh).
    this.unsubscribe = this.app.scripts.subscribe((change) => {
      if (change.type === "refreshed") this.reload();
    });
    this.stopFollowing = this.history.follow(this.app.runEvents);
    await this.reload();
  }

  async reload() {
    await this.history.load(true);
    this.history.more.hidden = true;
  }

  destroy() {
    this.unsubscribe?.();
    this.stopFollowing?.();
  }
}
