// Script versions (GET/POST /api/admin/scripts/<id>/versions...):
//   VersionsPanel  the Versions tab of the script view: every saved version (number, time,
//                  who), two chosen for a diff, restore with confirmation;
//   VersionView    /admin/scripts/<id>/versions/<n>[?against=<m>]: one version, full width,
//                  diffed against another (default: the one before) with CodeMirror's
//                  merge view, side by side or unified. Runs link here ("version N").
import { EditorState } from "@codemirror/state";
import { EditorView, lineNumbers } from "@codemirror/view";
import { MergeView, unifiedMergeView } from "@codemirror/merge";
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { formatDateTime, formatRelative } from "./format.js";
import { confirmDialog, emptyState, toast } from "./widgets.js";

const PAGE = 50;
// Fields shown first, in the editor's order; anything else (added by later versions) follows.
const FIELD_ORDER = ["name", "codeIdentifier", "description", "tags", "type", "runner", "defaultWorkingDirectory", "timeoutMs", "outputMode", "enabled", "schedule", "env"];

export function versionHref(scriptId, n, against) {
  const base = `/admin/scripts/${encodeURIComponent(scriptId)}/versions/${n}`;
  return against ? `${base}?against=${against}` : base;
}

/** A definition as text lines for the diff: its fields, then the script body. */
export function versionText(definition) {
  const d = definition || {};
  const lines = [];
  const show = (key, value) => {
    if (key === "env") {
      lines.push("env:");
      for (const e of Array.isArray(value) ? value : []) lines.push(`  ${e.key}=${e.secret ? "(secret)" : e.value}`);
    } else if (value !== null && typeof value === "object") {
      lines.push(`${key}: ${JSON.stringify(value)}`);
    } else {
      const text = value === null || value === undefined ? "none" : String(value);
      const [first, ...rest] = text.split("\n");
      lines.push(`${key}: ${first}`, ...rest.map((l) => `  ${l}`));
    }
  };
  for (const key of FIELD_ORDER) if (key in d) show(key, d[key]);
  for (const key of Object.keys(d).sort()) if (!FIELD_ORDER.includes(key) && key !== "script") show(key, d[key]);
  lines.push("", "──────── script ────────");
  return `${lines.join("\n")}\n${d.script || ""}`;
}

const READ_ONLY = [EditorState.readOnly.of(true), EditorView.editable.of(false), lineNumbers(), EditorView.lineWrapping];

/** A read-only diff of two texts; `unified` shows one column with deletions inline. Returns {destroy}. */
export function createDiff({ parent, before, after, unified = false }) {
  const collapseUnchanged = { margin: 3, minSize: 6 };
  if (unified) {
    const view = new EditorView({
      parent,
      state: EditorState.create({
        doc: after,
        extensions: [...READ_ONLY, unifiedMergeView({ original: before, mergeControls: false, collapseUnchanged })],
      }),
    });
    return { destroy: () => view.destroy() };
  }
  const view = new MergeView({ parent, a: { doc: before, extensions: READ_ONLY }, b: { doc: after, extensions: READ_ONLY }, collapseUnchanged, gutter: true });
  return { destroy: () => view.destroy() };
}

/** Asks, then restores version n of script; resolves to the restored definition or null. */
export async function restoreVersion(script, n, { discarding = false } = {}) {
  const ok = await confirmDialog({
    title: `Restore version ${n}?`,
    message: `“${script.name}” is saved again as it was in version ${n}; this becomes a new version and every version stays in the history.${discarding ? " Unsaved changes in the form are discarded." : ""}`,
    confirm: `Restore version ${n}`,
    danger: discarding,
  });
  if (!ok) return null;
  try {
    const restored = await api.restoreVersion(script.id, n);
    toast(restored.version === script.version ? `Version ${n} is already the current one` : `Restored version ${n} as version ${restored.version}`, "success");
    return restored;
  } catch (err) {
    toast(`Not restored: ${err.message}`, "error");
    return null;
  }
}

export class VersionsPanel {
  /** script: the loaded definition; onRestored(definition): after a restore; navigate(href). */
  constructor({ script, onRestored, navigate, isDirty }) {
    this.script = script;
    this.onRestored = onRestored;
    this.navigate = navigate;
    this.isDirty = isDirty || (() => false);
    this.cursor = null;
    this.gen = 0;
    this.from = null;
    this.to = null;
    this.tbody = h("tbody");
    this.info = h("p.muted.history-info", { role: "status" });
    this.more = h("button.btn", { type: "button", hidden: true, onclick: () => this.load(false) }, "Load older versions");
    this.compareBtn = h("button.btn.primary#compare-versions", { type: "button", onclick: () => this.compare() }, "Compare selected");
    this.el = h(
      "div.versions",
      h("div.versions-head", h("p.hint", "Every save that changes the script is a version. Pick two to compare."), this.compareBtn),
      h("div.table-wrap", h("table.runs-table.versions-table", h("thead", h("tr", ["From", "To", "Version", "Saved", "By", ""].map((t) => h("th", { scope: "col" }, t)))), this.tbody)),
      this.info,
      h("div.history-more", this.more),
    );
  }

  async load(reset = true) {
    if (!this.script) return;
    const gen = reset ? ++this.gen : this.gen;
    try {
      const data = await api.listVersions(this.script.id, { limit: PAGE, before: reset ? undefined : this.cursor });
      if (gen !== this.gen) return;
      if (reset) {
        replace(this.tbody);
        const [newest, previous] = data.versions;
        this.to = newest?.n ?? null;
        this.from = previous?.n ?? newest?.n ?? null;
      }
      for (const v of data.versions) this.tbody.appendChild(this.row(v));
      this.cursor = data.nextBefore;
      this.more.hidden = !this.cursor;
      this.info.textContent = this.tbody.children.length ? "" : "No versions yet.";
      this.compareBtn.disabled = this.tbody.children.length < 2;
    } catch (err) {
      if (gen === this.gen) this.info.textContent = `Could not load versions: ${err.message}`;
    }
  }

  row(v) {
    const current = v.n === this.script.version;
    const radio = (group) => h("input", {
      type: "radio", name: `version-${group}`, value: String(v.n), checked: (group === "from" ? this.from : this.to) === v.n,
      "aria-label": `Compare ${group} version ${v.n}`,
      onchange: () => { this[group] = v.n; },
    });
    return h(
      "tr.version-row",
      { dataset: { n: String(v.n) } },
      h("td", radio("from")),
      h("td", radio("to")),
      h("td", h("a", { href: versionHref(this.script.id, v.n), "data-link": true }, `v${v.n}`), current ? h("span.badge.muted-badge.current-badge", "current") : null),
      h("td", { title: v.at || "" }, h("time", { datetime: v.at || "" }, formatDateTime(v.at)), h("span.muted.rel", ` · ${formatRelative(v.at)}`)),
      h("td.cell-by", v.actor || "—"),
      h("td.num", current ? null : h("button.btn.small", { type: "button", onclick: () => this.restore(v.n) }, "Restore…")),
    );
  }

  compare() {
    if (this.from === null || this.to === null) return;
    const [older, newer] = this.from <= this.to ? [this.from, this.to] : [this.to, this.from];
    this.navigate(versionHref(this.script.id, newer, older === newer ? undefined : older));
  }

  async restore(n) {
    const restored = await restoreVersion(this.script, n, { discarding: this.isDirty() });
    if (restored) this.onRestored(restored);
  }
}

export class VersionView {
  constructor({ scriptId, n, against, app }) {
    this.scriptId = scriptId;
    this.n = n;
    this.against = against;
    this.app = app;
    this.unified = localStorage.getItem("scriptbox.diff") === "unified";
    this.el = h("section.view.version-view", { "aria-busy": "true" }, h("p.muted.pad", "Loading…"));
  }

  async mount() {
    document.title = `Version ${this.n} · Scriptbox`;
    let version;
    let script = null;
    let list;
    try {
      [version, list] = await Promise.all([api.getVersion(this.scriptId, this.n), api.listVersions(this.scriptId, { limit: 500 })]);
      script = await api.getScript(this.scriptId).catch(() => null); // null: the script was deleted
    } catch (err) {
      replace(this.el, emptyState(err.status === 404 ? "Version not found" : "Cannot load the version", err.message, { href: `/admin/scripts/${encodeURIComponent(this.scriptId)}`, label: "Back to the script" }));
      this.el.removeAttribute("aria-busy");
      return;
    }
    if (this.destroyed) return;
    this.version = version;
    this.script = script;
    this.numbers = list.versions.map((v) => v.n);
    const older = this.numbers.filter((n) => n < this.n);
    const fallback = older.length ? older[0] : null;
    this.otherN = this.numbers.includes(this.against) && this.against !== this.n ? this.against : fallback;
    this.build();
    await this.showDiff();
  }

  build() {
    const name = this.script?.name || this.version.definition.name;
    const current = this.script && this.script.version === this.n;
    this.select = h(
      "select#diff-against",
      { onchange: (e) => { this.otherN = e.target.value ? Number(e.target.value) : null; this.showDiff(); } },
      h("option", { value: "" }, "nothing (show this version alone)"),
      this.numbers.filter((n) => n !== this.n).map((n) => h("option", { value: String(n), selected: n === this.otherN }, `version ${n}${this.script?.version === n ? " (current)" : ""}`)),
    );
    this.layout = h("input#diff-unified", { type: "checkbox", checked: this.unified, onchange: (e) => {
      this.unified = e.target.checked;
      localStorage.setItem("scriptbox.diff", this.unified ? "unified" : "split");
      this.showDiff();
    } });
    this.legend = h("div.diff-legend.muted");
    this.diffHost = h("div.diff-host");
    const back = this.script
      ? h("a.back-link", { href: `/admin/scripts/${encodeURIComponent(this.scriptId)}`, "data-link": true }, `‹ ${name}`)
      : h("span.back-link", `${name} (deleted)`);
    replace(
      this.el,
      h(
        "header.view-head",
        h("div.view-head-text", back, h("h1.view-title", `Version ${this.n} of ${name}`),
          h("div.view-subtitle", `Saved ${formatDateTime(this.version.at)} by ${this.version.actor || "—"}`, current ? h("span.badge.muted-badge.current-badge", "current") : null,
            this.script ? h("a.script-link", { href: `/admin/scripts/${encodeURIComponent(this.scriptId)}`, "data-link": true }, `Open ${name}`) : h("span.badge.muted-badge", "script deleted"))),
        h("div.view-actions", this.script && !current ? h("button.btn#restore-version", { type: "button", onclick: () => this.restore() }, `Restore version ${this.n}…`) : null),
      ),
      h(
        "div.view-body",
        h("div.diff-controls", h("label", { for: "diff-against" }, "Compare with"), this.select, h("label.check", this.layout, " Unified"), this.legend),
        this.diffHost,
      ),
    );
    this.el.removeAttribute("aria-busy");
  }

  async showDiff() {
    const gen = (this.diffGen = (this.diffGen || 0) + 1);
    let other = null;
    if (this.otherN !== null) {
      try {
        other = await api.getVersion(this.scriptId, this.otherN);
      } catch (err) {
        toast(`Cannot load version ${this.otherN}: ${err.message}`, "error");
      }
    }
    if (gen !== this.diffGen || this.destroyed) return;
    this.diff?.destroy();
    replace(this.diffHost);
    // Older on the left (or as the deleted side), whichever was picked.
    const mine = versionText(this.version.definition);
    let before = other ? versionText(other.definition) : mine;
    let after = mine;
    let [left, right] = [this.otherN, this.n];
    if (other && this.otherN > this.n) [before, after, left, right] = [mine, before, this.n, this.otherN];
    this.legend.textContent = other ? `version ${left} → version ${right}` : "";
    this.diffHost.classList.toggle("unified", this.unified);
    this.diff = createDiff({ parent: this.diffHost, before, after, unified: this.unified });
  }

  async restore() {
    const restored = await restoreVersion(this.script, this.n);
    if (!restored) return;
    this.app.scripts.upsert(restored);
    this.app.navigate(`/admin/scripts/${encodeURIComponent(this.scriptId)}`);
  }

  destroy() {
    this.destroyed = true;
    this.diff?.destroy();
  }
}
