// /admin/scripts/notifications: notification channels (Apprise URLs). Add and edit (name, URL,
// events, scripts, enabled), send a test and see its result, delete with confirmation, and each
// channel's last delivery and last error. URLs come back masked; sending the masked URL back
// unchanged keeps the stored one (the server's rule), so editing never needs the secret.
import { loadScriptChoices, managedPage, scriptName, showFormErrors } from "./adminPages.js";
import { api } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { formatDateTime, formatRelative } from "./format.js";
import { confirmDialog, toast } from "./widgets.js";

export const EVENTS = [
  ["failed", "Failed"],
  ["timed_out", "Timed out"],
  ["succeeded", "Succeeded"],
  ["canceled", "Canceled"],
];
const DEFAULT_EVENTS = ["failed", "timed_out"];

/** Whether the channel's last error is newer than its last successful delivery. */
export function errorIsCurrent(channel) {
  if (!channel.lastErrorAt) return false;
  return !channel.lastSentAt || Date.parse(channel.lastErrorAt) >= Date.parse(channel.lastSentAt);
}

export class NotificationsView {
  constructor({ app }) {
    this.app = app;
    this.editing = null; // the channel being edited, or null for a new one
    this.scripts = [];
    this.tbody = h("tbody");
    this.info = h("p.muted.history-info", { role: "status" });
    this.form = this.buildForm();
    this.resetForm();
    this.tableWrap = h(
      "div.table-wrap",
      h("table.runs-table.notifications-table", h("thead", h("tr", ["Name", "Sends to", "Events", "Scripts", "Last sent", "Last error", ""].map((t) => h("th", { scope: "col" }, t)))), this.tbody),
    );
    this.el = managedPage("notifications-view", "Notifications",
      "Hear when runs end: e-mail, Slack, Teams, Discord, Telegram, ntfy, webhooks… each channel is one Apprise URL.",
      this.form, h("h2.section-title", "Channels"), this.tableWrap, this.info);
  }

  buildForm() {
    const ids = { name: uid("ntf"), url: uid("ntf"), scripts: uid("ntf"), enabled: uid("ntf") };
    this.formTitle = h("h2.section-title", "New channel");
    this.nameInput = h("input", { id: ids.name, name: "name", type: "text", maxlength: "100", placeholder: "e.g. ops chat", required: true, autocomplete: "off" });
    this.urlInput = h("input.mono", { id: ids.url, name: "url", type: "text", maxlength: "2048", placeholder: "e.g. ntfy://ntfy.example.com/ops or mailto://user:pass@example.com", required: true, autocomplete: "off", spellcheck: "false" });
    this.urlHint = h("p.hint", "An Apprise URL (see the Apprise wiki for each service). Passwords and tokens in it are never shown again.");
    this.eventBoxes = EVENTS.map(([value, label]) => {
      const box = h("input", { type: "checkbox", name: "events", value });
      return { value, box, label: h("label.checkbox", box, ` ${label}`) };
    });
    this.scriptsSelect = h("select", { id: ids.scripts, name: "scriptIds", multiple: true, size: "5" });
    this.enabledBox = h("input", { id: ids.enabled, type: "checkbox", name: "enabled", checked: true });
    this.errors = h("div.form-errors", { hidden: true, role: "alert" });
    this.submitButton = h("button.btn.primary", { type: "submit" }, "Add channel");
    this.cancelButton = h("button.btn", { type: "button", hidden: true, onclick: () => this.resetForm() }, "Cancel");
    return h(
      "form.notification-form.script-form",
      { onsubmit: (e) => { e.preventDefault(); this.save(); } },
      this.formTitle,
      this.errors,
      h("div.grid-2",
        h("div.field", h("label.label", { for: ids.name }, "Name"), this.nameInput),
        h("div.field", h("label.label", { for: ids.url }, "URL"), this.urlInput, this.urlHint)),
      h("div.grid-2",
        h("fieldset.field.events-field", h("legend.label", "Events"), h("div.checkbox-row", this.eventBoxes.map((e) => e.label)), h("p.hint", "The run ends that send a message.")),
        h("div.field", h("label.label", { for: ids.scripts }, "Limit to scripts"), this.scriptsSelect, h("p.hint", "None selected: every script. Ctrl/⌘-click to pick several."))),
      h("div.field", h("label.checkbox", this.enabledBox, " Enabled")),
      h("div.form-actions", this.submitButton, this.cancelButton),
    );
  }

  async mount() {
    document.title = "Notifications · Scriptbox";
    // The form is ready (and reset) before the scripts list arrives: what someone types
    // while it loads must not be wiped by a reset after it.
    await this.loadScripts();
    await this.load();
  }

  async loadScripts() {
    this.scripts = await loadScriptChoices(this.scriptsSelect);
  }

  scriptLabel(id) {
    return scriptName(this.scripts, id);
  }

  async load() {
    try {
      const data = await api.listNotifications();
      const channels = (data && data.notifications) || [];
      replace(this.tbody, channels.map((c) => this.row(c)));
      this.tableWrap.hidden = !channels.length;
      this.info.textContent = channels.length ? "" : "No channels yet.";
    } catch (err) {
      this.info.textContent = `Could not load channels: ${err.message}`;
    }
  }

  row(channel) {
    const events = EVENTS.filter(([v]) => channel.events.includes(v)).map(([, label]) => label).join(", ");
    const scripts = channel.scriptIds.length ? channel.scriptIds.map((id) => this.scriptLabel(id)).join(", ") : "all";
    const current = errorIsCurrent(channel);
    const testResult = h("div.test-result", { role: "status" });
    const lastError = channel.lastError
      ? h(`div.last-error${current ? ".error-current" : ".muted"}`, { title: formatDateTime(channel.lastErrorAt) }, `${formatRelative(channel.lastErrorAt)}: ${channel.lastError}`)
      : h("span.muted", "none");
    return h(
      `tr.notification-row${channel.enabled ? "" : ".disabled"}`,
      { dataset: { channelId: channel.id } },
      h("td", h("span.channel-name", channel.name), channel.enabled ? null : h("span.badge.muted", " disabled")),
      h("td", h("div.channel-service", channel.service), h("div.mono.muted.channel-url", channel.url)),
      h("td.channel-events", events),
      h("td.cell-script", scripts),
      h("td.last-sent", channel.lastSentAt ? formatRelative(channel.lastSentAt) : "never"),
      h("td.cell-error", lastError, testResult),
      h(
        "td.row-actions",
        h("button.btn.small", { type: "button", onclick: (e) => this.test(channel, e.currentTarget, testResult) }, "Test"),
        h("button.btn.small", { type: "button", onclick: () => this.edit(channel) }, "Edit"),
        h("button.btn.small.danger-outline", { type: "button", onclick: () => this.remove(channel) }, "Delete"),
      ),
    );
  }

  resetForm() {
    this.editing = null;
    this.formTitle.textContent = "New channel";
    this.submitButton.textContent = "Add channel";
    this.cancelButton.hidden = true;
    this.nameInput.value = "";
    this.urlInput.value = "";
    this.urlHint.textContent = "An Apprise URL (see the Apprise wiki for each service). Passwords and tokens in it are never shown again.";
    for (const e of this.eventBoxes) e.box.checked = DEFAULT_EVENTS.includes(e.value);
    for (const o of this.scriptsSelect.options) o.selected = false;
    this.enabledBox.checked = true;
    this.errors.hidden = true;
  }

  edit(channel) {
    this.editing = channel;
    this.formTitle.textContent = `Edit “${channel.name}”`;
    this.submitButton.textContent = "Save changes";
    this.cancelButton.hidden = false;
    this.nameInput.value = channel.name;
    this.urlInput.value = channel.url;
    this.urlHint.textContent = "Shown masked (****). Leave it as it is to keep the stored URL, or enter the whole URL again.";
    for (const e of this.eventBoxes) e.box.checked = channel.events.includes(e.value);
    for (const o of this.scriptsSelect.options) o.selected = channel.scriptIds.includes(o.value);
    this.enabledBox.checked = channel.enabled;
    this.errors.hidden = true;
    this.form.scrollIntoView({ block: "nearest" });
    this.nameInput.focus();
  }

  async save() {
    this.errors.hidden = true;
    const body = {
      name: this.nameInput.value.trim(),
      url: this.urlInput.value.trim(),
      events: this.eventBoxes.filter((e) => e.box.checked).map((e) => e.value),
      scriptIds: [...this.scriptsSelect.selectedOptions].map((o) => o.value),
      enabled: this.enabledBox.checked,
    };
    const editing = this.editing;
    try {
      if (editing) await api.updateNotification(editing.id, body);
      else await api.createNotification(body);
    } catch (err) {
      showFormErrors(this.errors, err);
      return;
    }
    toast(editing ? `Channel “${body.name}” saved` : `Channel “${body.name}” added`);
    this.resetForm();
    await this.load();
  }

  async test(channel, button, resultEl) {
    button.disabled = true;
    replace(resultEl, "Sending…");
    resultEl.className = "test-result muted";
    try {
      const result = await api.testNotification(channel.id);
      await this.load();
      const row = this.tbody.querySelector(`tr[data-channel-id="${channel.id}"] .test-result`);
      const target = row || resultEl;
      target.className = `test-result ${result.ok ? "test-ok" : "test-failed"}`;
      replace(target, result.ok ? "Test message sent" : `Test failed: ${result.error}`);
    } catch (err) {
      resultEl.className = "test-result test-failed";
      replace(resultEl, `Test failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async remove(channel) {
    const ok = await confirmDialog({
      title: `Delete channel “${channel.name}”?`,
      message: "It stops receiving messages at once. Its past failures stay in the audit log.",
      confirm: "Delete",
      danger: true,
    });
    if (!ok) return;
    try {
      await api.deleteNotification(channel.id);
      toast(`Channel “${channel.name}” deleted`);
    } catch (err) {
      toast(`Could not delete: ${err.message}`, "error");
    }
    if (this.editing && this.editing.id === channel.id) this.resetForm();
    await this.load();
  }

  destroy() {}
}
