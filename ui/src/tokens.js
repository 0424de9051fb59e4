// /admin/scripts/tokens: API tokens for automation. Create (name, scope, scripts, expiry),
// the secret shown once in a copy dialog, revoke, and when each was last used.
import { loadScriptChoices, managedPage, scriptName, showFormErrors } from "./adminPages.js";
import { api } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { formatDateTime, formatRelative } from "./format.js";
import { confirmDialog, toast } from "./widgets.js";

/** "in 30 days" etc. as an ISO time, or null for "never". */
export function expiryFromChoice(choice, now = Date.now()) {
  const days = Number(choice);
  if (!choice || !Number.isFinite(days) || days <= 0) return null;
  return new Date(now + days * 86_400_000).toISOString();
}

export class TokensView {
  constructor({ app }) {
    this.app = app;
    this.tbody = h("tbody");
    this.info = h("p.muted.history-info", { role: "status" });
    this.form = this.buildForm();
    this.tableWrap = h(
      "div.table-wrap",
      h("table.runs-table.tokens-table", h("thead", h("tr", ["Name", "Scope", "Scripts", "Created", "Expires", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))), this.tbody),
    );
    this.el = managedPage("tokens-view", "API tokens",
      "For CI jobs and scripts: sent as Authorization: Bearer on /api/admin/ only. A token never opens this page.",
      this.form, h("h2.section-title", "Tokens"), this.tableWrap, this.info);
  }

  buildForm() {
    const ids = { name: uid("tok"), scope: uid("tok"), scripts: uid("tok"), expiry: uid("tok") };
    this.nameInput = h("input", { id: ids.name, name: "name", type: "text", maxlength: "64", placeholder: "e.g. ci-deploy", required: true, autocomplete: "off" });
    this.scopeSelect = h(
      "select",
      { id: ids.scope, name: "scope", onchange: () => this.syncScope() },
      h("option", { value: "run" }, "run: start runs and read them"),
      h("option", { value: "admin" }, "admin: the whole API"),
    );
    this.scriptsSelect = h("select", { id: ids.scripts, name: "scriptIds", multiple: true, size: "5" });
    this.expirySelect = h(
      "select",
      { id: ids.expiry, name: "expiry" },
      h("option", { value: "30" }, "in 30 days"),
      h("option", { value: "7" }, "in 7 days"),
      h("option", { value: "90" }, "in 90 days"),
      h("option", { value: "365" }, "in a year"),
      h("option", { value: "" }, "never"),
    );
    this.errors = h("div.form-errors", { hidden: true, role: "alert" });
    this.scriptsField = h("div.field", h("label.label", { for: ids.scripts }, "Limit to scripts"), this.scriptsSelect, h("p.hint", "None selected: every script. Ctrl/⌘-click to pick several."));
    return h(
      "form.token-form.script-form",
      { onsubmit: (e) => { e.preventDefault(); this.create(); } },
      h("h2.section-title", "New token"),
      this.errors,
      h("div.grid-2",
        h("div.field", h("label.label", { for: ids.name }, "Name"), this.nameInput, h("p.hint", "Runs it starts record token:<name>.")),
        h("div.field", h("label.label", { for: ids.scope }, "Scope"), this.scopeSelect)),
      h("div.grid-2", this.scriptsField, h("div.field", h("label.label", { for: ids.expiry }, "Expires"), this.expirySelect)),
      h("div", h("button.btn.primary", { type: "submit" }, "Create token")),
    );
  }

  syncScope() {
    this.scriptsField.hidden = this.scopeSelect.value !== "run";
  }

  async mount() {
    document.title = "API tokens · Scriptbox";
    await this.loadScripts();
    await this.load();
  }

  async loadScripts() {
    this.scripts = await loadScriptChoices(this.scriptsSelect);
    this.syncScope();
  }

  scriptLabel(id) {
    return scriptName(this.scripts, id);
  }

  async load() {
    try {
      const data = await api.listTokens();
      const tokens = (data && data.tokens) || [];
      replace(this.tbody, tokens.map((t) => this.row(t)));
      this.tableWrap.hidden = !tokens.length;
      this.info.textContent = tokens.length ? "" : "No tokens yet.";
    } catch (err) {
      this.info.textContent = `Could not load tokens: ${err.message}`;
    }
  }

  row(token) {
    const scripts = token.scope === "admin" ? "—" : token.scriptIds.length ? token.scriptIds.map((id) => this.scriptLabel(id)).join(", ") : "all";
    const expired = token.expiresAt && Date.parse(token.expiresAt) <= Date.now();
    return h(
      "tr.token-row",
      { dataset: { tokenId: token.id } },
      h("td", h("span.token-name", token.name), h("span.muted.mono.token-prefix", ` ${token.prefix}…`)),
      h("td", h("span.trigger", token.scope)),
      h("td.cell-script", scripts),
      h("td", formatDateTime(token.createdAt)),
      h("td", token.expiresAt ? (expired ? "expired" : formatDateTime(token.expiresAt)) : "never"),
      h("td.last-used", token.lastUsedAt ? formatRelative(token.lastUsedAt) : "never"),
      h("td", h("button.btn.small.danger-outline", { type: "button", onclick: () => this.revoke(token) }, "Revoke")),
    );
  }

  async create() {
    this.errors.hidden = true;
    const body = {
      name: this.nameInput.value.trim(),
      scope: this.scopeSelect.value,
      scriptIds: this.scopeSelect.value === "run" ? [...this.scriptsSelect.selectedOptions].map((o) => o.value) : [],
      expiresAt: expiryFromChoice(this.expirySelect.value),
    };
    let created;
    try {
      created = await api.createToken(body);
    } catch (err) {
      showFormErrors(this.errors, err);
      return;
    }
    this.nameInput.value = "";
    await this.load();
    await showSecretOnce(created);
  }

  async revoke(token) {
    const ok = await confirmDialog({
      title: `Revoke token “${token.name}”?`,
      message: "Requests with it are refused at once and its open output streams end. This cannot be undone.",
      confirm: "Revoke",
      danger: true,
    });
    if (!ok) return;
    try {
      await api.revokeToken(token.id);
      toast(`Token “${token.name}” revoked`);
    } catch (err) {
      toast(`Could not revoke: ${err.message}`, "error");
    }
    await this.load();
  }

  destroy() {}
}

/** The one time the secret is shown: a dialog with a copy button. Resolves when closed. */
function showSecretOnce(created) {
  return new Promise((resolve) => {
    const secret = h("input.mono.token-secret", { type: "text", readonly: true, value: created.token, "aria-label": "The new token" });
    const copy = h("button.btn", { type: "button", onclick: async () => {
      secret.select();
      try {
        await navigator.clipboard.writeText(created.token);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Select and copy it";
      }
    } }, "Copy");
    const titleId = uid("dlg");
    const dlg = h(
      "dialog.modal.token-dialog",
      { "aria-labelledby": titleId },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId }, `Token “${created.name}” created`),
        h("p", "Copy it now: it is shown only this once. Scriptbox keeps only its hash."),
        h("div.with-hint", secret, copy),
        h("div.modal-actions", h("button.btn.primary", { type: "submit", value: "ok" }, "Done")),
      ),
    );
    dlg.addEventListener("close", () => {
      secret.value = "";
      dlg.remove();
      resolve();
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    secret.select();
  });
}
