// /admin/scripts/audit: who did what, newest first, filtered by action and script, paged
// with the `before` cursor of GET /api/admin/audit.
import { api } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { formatDateTime, formatRelative } from "./format.js";

export const AUDIT_ACTIONS = [
  "script.create", "script.update", "script.delete",
  "run.start", "run.cancel", "run.delete",
  "token.create", "token.revoke",
  "retention.pruned",
  "auth.failed",
];

export class AuditView {
  constructor({ app }) {
    this.app = app;
    const params = new URLSearchParams(location.search);
    this.action = params.get("action") || "";
    this.scriptId = params.get("scriptId") || "";
    this.cursor = null;
    this.gen = 0;
    this.tbody = h("tbody");
    this.info = h("p.muted.history-info", { role: "status" });
    this.more = h("button.btn", { type: "button", hidden: true, onclick: () => this.load(false) }, "Load older entries");
    const actionId = uid("audit");
    const scriptId = uid("audit");
    this.actionSelect = h(
      "select",
      { id: actionId, name: "action", onchange: () => this.filterChanged() },
      h("option", { value: "" }, "All actions"),
      ["script", "run", "token"].map((p) => h("option", { value: p }, `${p}.*`)),
      AUDIT_ACTIONS.map((a) => h("option", { value: a }, a)),
    );
    this.actionSelect.value = this.action;
    this.scriptSelect = h("select", { id: scriptId, name: "scriptId", onchange: () => this.filterChanged() }, h("option", { value: "" }, "All scripts"));
    this.tableWrap = h(
      "div.table-wrap",
      h("table.runs-table.audit-table", h("thead", h("tr", ["When", "Who", "Action", "What", "From"].map((t) => h("th", { scope: "col" }, t)))), this.tbody),
    );
    this.el = h(
      "section.view.audit-view",
      h("header.view-head", h("div.view-head-text", h("a.back-link", { href: "/admin/scripts", "data-link": true }, "‹ Scripts"), h("h1.view-title", "Audit log"), h("div.view-subtitle.muted", "Who changed or ran what, newest first"))),
      h(
        "div.view-body",
        h("div.history-filter.audit-filter", h("label", { for: actionId }, "Action"), this.actionSelect, h("label", { for: scriptId }, "Script"), this.scriptSelect),
        this.tableWrap,
        this.info,
        h("div.history-more", this.more),
      ),
    );
  }

  async mount() {
    document.title = "Audit log · Scriptbox";
    try {
      const data = await api.listScripts();
      const scripts = (data && data.scripts) || [];
      this.scriptSelect.append(...scripts.map((s) => h("option", { value: s.id }, s.name)));
    } catch {
      // The filter still works by URL (?scriptId=) without the names.
    }
    this.scriptSelect.value = this.scriptId;
    await this.load(true);
  }

  filterChanged() {
    this.action = this.actionSelect.value;
    this.scriptId = this.scriptSelect.value;
    const q = new URLSearchParams();
    if (this.action) q.set("action", this.action);
    if (this.scriptId) q.set("scriptId", this.scriptId);
    const s = q.toString();
    this.app.replaceUrl(`/admin/scripts/audit${s ? `?${s}` : ""}`);
    this.load(true);
  }

  async load(reset) {
    const gen = reset ? ++this.gen : this.gen;
    this.more.disabled = true;
    try {
      const data = await api.listAudit({
        action: this.action || undefined,
        scriptId: this.scriptId || undefined,
        limit: 50,
        before: reset ? undefined : this.cursor,
      });
      if (gen !== this.gen) return;
      if (reset) replace(this.tbody);
      for (const entry of data.entries || []) this.tbody.appendChild(this.row(entry));
      this.cursor = data.nextBefore || null;
      this.more.hidden = !this.cursor;
      const none = !this.tbody.children.length;
      this.tableWrap.hidden = none;
      this.info.textContent = none ? "No entries." : "";
    } catch (err) {
      if (gen === this.gen) this.info.textContent = `Could not load the audit log: ${err.message}`;
    } finally {
      if (gen === this.gen) this.more.disabled = false;
    }
  }

  row(entry) {
    let what = entry.summary || "";
    let link = null;
    if (entry.targetType === "run" && entry.targetId) link = `/admin/scripts/runs/${entry.targetId}`;
    else if (entry.targetType === "script" && entry.targetId && entry.action !== "script.delete") link = `/admin/scripts/${entry.targetId}`;
    const fields = entry.details && Array.isArray(entry.details.fields) ? entry.details.fields : null;
    if (fields && !what) what = fields.join(", ");
    return h(
      "tr.audit-row",
      { dataset: { action: entry.action, actor: entry.actor } },
      h("td", { title: entry.at || "" }, formatDateTime(entry.at), h("span.muted.rel", ` · ${formatRelative(entry.at)}`)),
      h("td.audit-actor", entry.actor || "—"),
      h("td", h("span.trigger", entry.action)),
      h("td.audit-what", link ? h("a", { href: link, "data-link": true }, what) : what),
      h("td.mono", entry.remoteAddr || "—"),
    );
  }

  destroy() {}
}
