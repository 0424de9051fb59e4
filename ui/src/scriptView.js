// /admin/scripts/new and /admin/scripts/<id>: the definition editor beside the run panel
// (output, run history and versions tabs). Ctrl/Cmd+S saves, Ctrl/Cmd+Enter saves if needed and runs.
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { isActive } from "./vocabulary.js";
import { RunHistory } from "./history.js";
import { RunPanel } from "./runPanel.js";
import { startManualRun } from "./runStarter.js";
import { VersionsPanel } from "./versions.js";
import { EMPTY_SCRIPT, ScriptForm, sampleFor } from "./scriptForm.js";
import { MOD_KEY, confirmDialog, emptyState, statusBadge, statusLabel, toast } from "./widgets.js";

export class ScriptView {
  constructor({ id, app }) {
    this.id = id; // null for a new script
    this.app = app;
    this.script = null;
    this.busy = false;
    this.el = h("section.view.script-view", { "aria-busy": "true" }, h("p.muted.pad", "Loading…"));
  }

  async mount() {
    this.unsubscribe = this.app.scripts.subscribe((change) => this.onScriptsChanged(change));
    let script = null;
    if (this.id) {
      try {
        script = await api.getScript(this.id);
      } catch (err) {
        replace(this.el, emptyState(err.status === 404 ? "Script not found" : "Cannot load the script", err.message, { href: "/admin/scripts", label: "Back to scripts" }));
        this.el.removeAttribute("aria-busy");
        return;
      }
      if (this.destroyed) return;
    }
    this.build(script);
    if (script) this.showLatestRun();
  }

  build(script) {
    this.script = script;
    const isNew = !script;
    const initial = script || { ...EMPTY_SCRIPT, script: sampleFor("bash") };
    this.form = new ScriptForm({
      script: initial,
      isNew,
      onChange: () => this.scheduleDirtyCheck(),
      onSubmit: () => this.save(),
    });
    this.baseline = JSON.stringify(this.form.value());

    this.title = h("h1.view-title");
    this.subtitle = h("div.view-subtitle");
    this.dirtyMark = h("span.dirty-mark", { hidden: true, role: "status" }, "Unsaved changes");
    this.saveBtn = h("button.btn#save-script", { type: "button", onclick: () => this.save(), title: `Save (${MOD_KEY}+S)` }, "Save", h("kbd", `${MOD_KEY} S`));
    // Why Run is unavailable, in words next to it: a disabled button shows no tooltip.
    this.runNote = h("span.run-note#run-note", { hidden: true });
    this.runBtn = h("button.btn.primary#run-script", { type: "button", onclick: () => this.runNow(), title: `Run (${MOD_KEY}+Enter)`, "aria-describedby": "run-note" }, "▶ Run", h("kbd", `${MOD_KEY} ↵`));
    // On a narrow screen the output is far below: this chip shows the run's state up here.
    this.runChip = h("a.run-chip#run-chip", { href: "#pane-output", hidden: true, onclick: (e) => { e.preventDefault(); this.revealOutput(); } });
    this.deleteBtn = h("button.btn.danger-outline#delete-script", { type: "button", onclick: () => this.remove(), hidden: isNew }, "Delete");

    this.panel = new RunPanel({ onChange: (run) => this.onRunChange(run) });
    this.history = new RunHistory({ scriptId: script?.id, pageSize: 20, showFilter: false, navigate: (href) => this.app.navigate(href) });
    // A new script's history has no script yet: it follows once saved (setScriptId below).
    if (script) this.stopFollowing = this.history.follow(this.app.runEvents);
    // A run of this script started elsewhere (API, schedule, another tab) shows in the panel.
    this.stopRunEvents = this.app.runEvents.subscribe((change) => {
      const run = change.run;
      if (!run || !this.script || run.scriptId !== this.script.id || !isActive(run.status) || this.busy) return;
      const showing = this.panel.run;
      if (run.id !== this.panel.runId && !(showing && isActive(showing.status))) this.panel.show(run.id);
    });
    this.versions = new VersionsPanel({
      script,
      navigate: (href) => this.app.navigate(href),
      isDirty: () => this.isDirty(),
      onRestored: (restored) => {
        this.app.scripts.upsert(restored);
        this.app.navigate(`/admin/scripts/${restored.id}`, { force: true }); // the form shows what was restored
      },
    });
    const tab = (name, label) => h(`button.tab#tab-${name}`, { type: "button", role: "tab", "aria-selected": String(name === "output"), "aria-controls": `pane-${name}`, tabIndex: name === "output" ? 0 : -1, onclick: () => this.selectTab(name) }, label);
    this.tabs = { output: tab("output", "Output"), history: tab("history", "History"), versions: tab("versions", "Versions") };
    this.tabs.versions.hidden = isNew;
    this.tabOutput = this.tabs.output;
    this.tabHistory = this.tabs.history;
    const pane = (name, content) => h(`div.tab-pane#pane-${name}`, { role: "tabpanel", "aria-labelledby": `tab-${name}`, hidden: name !== "output" }, content);
    this.panes = { output: pane("output", this.panel.el), history: pane("history", this.history.el), versions: pane("versions", this.versions.el) };
    this.paneOutput = this.panes.output;
    this.paneHistory = this.panes.history;

    replace(
      this.el,
      h(
        "header.view-head",
        h("div.view-head-text", h("a.back-link", { href: "/admin/scripts", "data-link": true, "aria-label": "All scripts" }, "‹ Scripts"), this.title, this.subtitle),
        h("div.view-actions", this.dirtyMark, this.runChip, this.saveBtn, this.runNote, this.runBtn, this.deleteBtn),
      ),
      h(
        "div.script-body",
        h("div.editor-pane", this.form.el),
        h(
          "div.run-pane",
          h("div.tabs", { role: "tablist", "aria-label": "Run panel", onkeydown: (e) => {
            // Arrow keys move between tabs (WAI-ARIA tabs pattern).
            if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
            const names = Object.keys(this.tabs).filter((n) => !this.tabs[n].hidden);
            const at = names.findIndex((n) => this.tabs[n].getAttribute("aria-selected") === "true");
            const next = names[(at + (e.key === "ArrowRight" ? 1 : names.length - 1)) % names.length];
            this.selectTab(next);
            this.tabs[next].focus();
          } }, Object.values(this.tabs)),
          Object.values(this.panes),
        ),
      ),
    );
    this.el.removeAttribute("aria-busy");
    this.updateHeader();
    this.updateButtons();
    if (isNew) this.form.name.focus();
  }

  updateHeader() {
    const s = this.script;
    this.title.textContent = s ? s.name : "New script";
    replace(
      this.subtitle,
      s
        ? [
            h("code.ident", s.codeIdentifier),
            h("span.kind", s.type === s.runner ? s.type : `${s.type} · ${s.runner}`),
            s.enabled === false ? h("span.badge.muted-badge", "disabled") : null,
          ]
        : h("span.muted", `Fill in the fields and save (${MOD_KEY}+S).`),
    );
    document.title = `${s ? s.name : "New script"} · Scriptbox`;
  }

  selectTab(which) {
    for (const [name, tab] of Object.entries(this.tabs)) {
      tab.setAttribute("aria-selected", String(name === which));
      tab.tabIndex = name === which ? 0 : -1;
      this.panes[name].hidden = name !== which;
    }
    if (which === "history" && this.script) this.history.load(true);
    if (which === "versions" && this.script) this.versions.load(true);
  }

  async showLatestRun() {
    try {
      const data = await api.listRuns({ scriptId: this.script.id, limit: 1 });
      const run = data?.runs?.[0];
      if (run && !this.destroyed && !this.panel.runId) this.panel.show(run);
    } catch {
      // the panel simply stays empty
    }
  }

  scheduleDirtyCheck() {
    if (this.dirtyRaf) return;
    this.dirtyRaf = requestAnimationFrame(() => {
      this.dirtyRaf = 0;
      this.updateButtons();
    });
  }

  isDirty() {
    return !!this.form && JSON.stringify(this.form.value()) !== this.baseline;
  }

  updateButtons() {
    if (!this.form) return;
    const dirty = this.isDirty();
    this.dirtyMark.hidden = !dirty;
    this.saveBtn.classList.toggle("attention", dirty);
    const running = this.panel.run && isActive(this.panel.run.status);
    const disabled = !this.form.enabled.checked;
    this.runBtn.disabled = this.busy || !!running || disabled;
    this.runNote.hidden = !disabled;
    this.runNote.textContent = disabled ? "Disabled: switch “Enabled” on to run it" : "";
    this.saveBtn.disabled = this.busy;
    this.runBtn.title = dirty || !this.script ? `Save and run (${MOD_KEY}+Enter)` : `Run (${MOD_KEY}+Enter)`;
  }

  /** Saves; resolves to true when the definition on the server matches the form. */
  async save({ overwrite = false } = {}) {
    if (!this.form || this.busy) return false;
    if (this.script && !this.isDirty()) {
      this.form.clearErrors();
      return true;
    }
    this.busy = true;
    this.updateButtons();
    const doc = this.form.value();
    // Sending back the updatedAt we loaded makes the server refuse (409 edit_conflict) a
    // save over someone else's newer one, unless the admin chose to overwrite it.
    if (this.script && !overwrite) doc.updatedAt = this.script.updatedAt;
    let conflict = false;
    try {
      const saved = this.script ? await api.updateScript(this.script.id, doc) : await api.createScript(doc);
      const wasNew = !this.script;
      this.script = saved;
      this.id = saved.id;
      this.form.isNew = false;
      this.form.clearErrors();
      this.form.markSecretsStored();
      this.baseline = JSON.stringify(this.form.value());
      this.deleteBtn.hidden = false;
      if (this.history.scriptId !== saved.id) {
        this.history.setScriptId(saved.id);
        this.stopFollowing?.();
        this.stopFollowing = this.history.follow(this.app.runEvents);
      }
      this.versions.script = saved;
      this.tabs.versions.hidden = false;
      if (!this.panes.versions.hidden) this.versions.load(true);
      this.updateHeader();
      this.app.scripts.upsert(saved);
      this.app.sidebar.setActive(saved.id);
      if (wasNew) this.app.replaceUrl(`/admin/scripts/${saved.id}`);
      toast(wasNew ? "Script created" : "Saved", "success", 1800);
      return true;
    } catch (err) {
      if (err.status === 409 && err.code === "edit_conflict") {
        conflict = true;
        return false;
      }
      const first = this.form.showErrors(err.fields, err.message);
      if (first) first.focus();
      // A 409 names what conflicts (e.g. the code identifier is taken); a 400 points at the fields.
      toast(err.status === 400 ? "Not saved: fix the highlighted fields" : `Not saved: ${err.message}`, "error");
      return false;
    } finally {
      this.busy = false;
      this.updateButtons();
      if (conflict) this.resolveConflict();
    }
  }

  /** Someone saved this script after we loaded it: overwrite, or keep editing. */
  async resolveConflict() {
    const overwrite = await confirmDialog({
      title: "Changed by someone else",
      message: "This script was saved elsewhere after you opened it. Overwrite that version with yours, or keep editing (reload the page to see theirs; your changes would be lost).",
      confirm: "Overwrite with mine",
      cancel: "Keep editing",
      danger: true,
    });
    if (overwrite) return this.save({ overwrite: true });
    return false;
  }

  async runNow() {
    if (!this.form || this.busy) return;
    if (this.panel.run && isActive(this.panel.run.status)) return;
    if (!this.form.enabled.checked) {
      toast("Cannot run: this script is disabled. Switch “Enabled” on and save first.", "error");
      return;
    }
    if (!this.script || this.isDirty()) {
      if (!(await this.save())) return;
    }
    this.busy = true;
    this.updateButtons();
    const script = this.script;
    try {
      const runId = await startManualRun(script);
      if (!runId) return;
      this.selectTab("output");
      this.revealOutput();
      await this.panel.show(runId);
      // Again once the panel has its content: the layout above and in it may have
      // moved while it loaded (on a busy phone the first scroll can end off target).
      this.revealOutput();
      this.app.scripts.upsert({ id: script.id, lastRun: { id: runId, status: "running", createdAt: new Date().toISOString(), finishedAt: null } });
    } catch (err) {
      toast(err.status === 409 ? `Cannot run: ${err.message}` : `Run failed to start: ${err.message}`, "error");
    } finally {
      this.busy = false;
      this.updateButtons();
    }
  }

  /** Brings the output panel into view when it is off screen (stacked layout, phones). */
  revealOutput() {
    const main = this.el.closest(".main") || document.scrollingElement;
    const pane = this.paneOutput.getBoundingClientRect();
    const view = main.getBoundingClientRect();
    if (pane.top >= view.top && pane.top < view.bottom - 120) return; // already in sight
    const smooth = !matchMedia("(prefers-reduced-motion: reduce)").matches;
    this.paneOutput.scrollIntoView({ block: "start", behavior: smooth ? "smooth" : "auto" });
  }

  /** The header chip mirrors the shown run's status (visible only when the panel is stacked below). */
  updateRunChip(run) {
    if (!run || !run.status) {
      this.runChip.hidden = true;
      return;
    }
    this.runChip.hidden = false;
    replace(this.runChip, statusBadge(run.status), h("span.run-chip-text", "Output ↓"));
    this.runChip.setAttribute("aria-label", `Last run ${statusLabel(run.status)}: go to its output`);
  }

  onRunChange(run) {
    this.updateRunChip(run);
    this.updateButtons();
    if (!this.script || run.scriptId && run.scriptId !== this.script.id) return;
    if (!isActive(run.status) && run.finishedAt) {
      this.app.scripts.upsert({ id: this.script.id, lastRun: { id: run.id, status: run.status, createdAt: run.createdAt, finishedAt: run.finishedAt } });
      if (!this.paneHistory.hidden) this.history.load(true);
    }
  }

  async remove() {
    if (!this.script) return;
    const ok = await confirmDialog({
      title: `Delete “${this.script.name}”?`,
      message: "The definition is removed; its run history stays. This cannot be undone.",
      confirm: "Delete script",
      danger: true,
    });
    if (!ok) return;
    try {
      await api.deleteScript(this.script.id);
      this.app.scripts.remove(this.script.id);
      toast(`Deleted ${this.script.name}`, "success");
      this.baseline = JSON.stringify(this.form.value()); // nothing left to lose
      this.script = null;
      this.form = null;
      this.app.navigate("/admin/scripts", { force: true });
    } catch (err) {
      toast(err.status === 409 ? `Cannot delete: ${err.message}` : `Delete failed: ${err.message}`, "error");
    }
  }

  /** Asked before leaving the view; true when there is nothing to lose. */
  async canLeave() {
    if (!this.isDirty()) return true;
    return confirmDialog({
      title: "Discard unsaved changes?",
      message: "This script has changes that are not saved.",
      confirm: "Discard changes",
      cancel: "Keep editing",
      danger: true,
    });
  }

  /** The list's enabled switch changed this script: take it over without dirtying the form. */
  /** The scripts store changed: a toggle of this script, or a refresh of the list. */
  onScriptsChanged(change) {
    if (change.type === "refreshed") this.onScriptsRefreshed(this.app.scripts.scripts);
    else if (change.type === "updated" && change.source === "toggle" && change.doc?.id === this.script?.id) {
      this.onToggled(change.doc);
    }
  }

  onToggled(doc) {
    if (!this.form || !this.script) return;
    this.script = { ...this.script, enabled: doc.enabled, updatedAt: doc.updatedAt, version: doc.version };
    this.versions.script = this.script;
    this.form.setEnabled(doc.enabled);
    const base = JSON.parse(this.baseline);
    base.enabled = doc.enabled;
    this.baseline = JSON.stringify(base);
    this.updateHeader();
    this.updateButtons();
  }

  /** The list refreshed: follow a run of this script that someone else started. */
  onScriptsRefreshed(scripts) {
    if (!this.script || !this.panel) return;
    const last = scripts.find((s) => s.id === this.script.id)?.lastRun;
    const showing = this.panel.run;
    if (last && isActive(last.status) && last.id !== this.panel.runId && !(showing && isActive(showing.status))) {
      this.panel.show(last.id);
    }
  }

  hasUnsavedChanges() {
    return this.isDirty();
  }

  onKey(action) {
    if (action === "save") this.save();
    else if (action === "run") this.runNow();
  }

  destroy() {
    this.destroyed = true;
    this.unsubscribe?.();
    this.stopFollowing?.();
    this.stopRunEvents?.();
    if (this.dirtyRaf) cancelAnimationFrame(this.dirtyRaf);
    this.panel?.destroy();
    this.form?.destroy();
  }
}
