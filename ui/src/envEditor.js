// The env editor of the script form: KEY = value rows, each with a "secret" switch (SPEC §8.3).
//
// Secret values are write-only: the server answers a stored secret as {key, value: null,
// secret: true}. Such a row shows "set" and a Replace button, never a value, and sends
// `value: null` back so the server keeps what it has. Replace opens an empty password field.
import { h, uid } from "./dom.js";

class EnvRow {
  constructor(entry, { onRemove }) {
    this.stored = entry.secret === true && (entry.value === null || entry.value === undefined);
    this.key = h("input.mono", { type: "text", id: uid("env-key"), name: "env-key", placeholder: "NAME", spellcheck: "false" });
    this.key.value = entry.key || "";
    this.value = h("input.mono.env-value", { type: entry.secret ? "password" : "text", id: uid("env-value"), name: "env-value", placeholder: "value", spellcheck: "false", autocomplete: "off" });
    this.value.value = this.stored ? "" : entry.value ?? "";
    this.secret = h("input", { type: "checkbox", id: uid("env-secret"), name: "env-secret", role: "switch", checked: entry.secret === true });
    this.secret.addEventListener("change", () => this.onSecretToggled());
    this.setBadge = h("span.secret-set", "set");
    this.replaceBtn = h("button.btn.small.replace-secret", { type: "button", onclick: () => this.replace() }, "Replace");
    this.storedBox = h("div.env-stored", this.setBadge, this.replaceBtn);
    this.err = h("p.field-error", { hidden: true, id: uid("env-err") });
    this.removeBtn = h("button.btn.icon", { type: "button", title: "Remove", onclick: () => onRemove(this) }, "✕");
    this.el = h(
      "div.env-row",
      this.key,
      h("span.eq", { "aria-hidden": "true" }, "="),
      this.value,
      this.storedBox,
      h("label.switch.compact.env-secret", { for: this.secret.id }, this.secret, h("span.switch-track", { "aria-hidden": "true" }), h("span.switch-text", "secret")),
      this.removeBtn,
      this.err,
    );
    this.showStored();
  }

  /** Row labels say the position, so they are renumbered when a row goes. */
  number(n) {
    this.key.setAttribute("aria-label", `Variable ${n} name`);
    this.value.setAttribute("aria-label", `Variable ${n} value`);
    this.secret.setAttribute("aria-label", `Variable ${n} is a secret`);
    this.replaceBtn.setAttribute("aria-label", `Replace the secret value of variable ${n}`);
    this.removeBtn.setAttribute("aria-label", `Remove variable ${n}`);
    this.setBadge.setAttribute("aria-label", `Variable ${n}: a secret value is set`);
  }

  showStored() {
    this.value.hidden = this.stored;
    this.storedBox.hidden = !this.stored;
  }

  replace() {
    this.stored = false;
    this.showStored();
    this.value.value = "";
    this.value.placeholder = "new secret value";
    this.value.focus();
    this.el.dispatchEvent(new Event("input", { bubbles: true }));
  }

  onSecretToggled() {
    this.value.type = this.secret.checked ? "password" : "text";
    // Making a stored secret plain needs a value we do not have: ask for a new one.
    if (!this.secret.checked && this.stored) this.replace();
  }

  entry() {
    const key = this.key.value.trim();
    if (!this.secret.checked) return { key, value: this.value.value };
    return { key, value: this.stored ? null : this.value.value, secret: true };
  }

  /** After a save the server holds the typed secret: show "set" and drop the value. */
  markStored() {
    if (!this.secret.checked) return;
    this.stored = true;
    this.value.value = "";
    this.showStored();
  }

  clearError() {
    this.err.hidden = true;
    this.err.textContent = "";
    this.key.removeAttribute("aria-invalid");
    this.value.removeAttribute("aria-invalid");
  }

  /** Shows `text` under the row; returns the control it is about. */
  showError(part, text) {
    this.err.hidden = false;
    this.err.textContent = this.err.textContent ? `${this.err.textContent}; ${text}` : text;
    let ctl = this.key;
    if (part === "value") ctl = this.stored ? this.replaceBtn : this.value;
    else if (part === "secret") ctl = this.secret;
    ctl.setAttribute("aria-invalid", "true");
    ctl.setAttribute("aria-describedby", this.err.id);
    return ctl;
  }
}

export class EnvEditor {
  constructor({ env, onChange }) {
    this.onChange = onChange;
    this.rows = [];
    this.body = h("div.env-rows");
    this.addBtn = h("button.btn.small", { type: "button", onclick: () => { this.add({ key: "", value: "" }, true); this.onChange?.(); } }, "+ Add variable");
    for (const entry of Array.isArray(env) ? env : []) this.add(entry, false);
  }

  add(entry, focus) {
    const row = new EnvRow(entry, { onRemove: (r) => this.remove(r) });
    this.rows.push(row);
    this.body.appendChild(row.el);
    row.number(this.rows.length);
    if (focus) row.key.focus();
  }

  remove(row) {
    const at = this.rows.indexOf(row);
    row.el.remove();
    this.rows = this.rows.filter((r) => r !== row);
    this.rows.forEach((r, i) => r.number(i + 1));
    (this.rows[at]?.removeBtn || this.rows[at - 1]?.removeBtn || this.addBtn).focus();
    this.onChange?.();
  }

  value() {
    return this.rows.map((r) => r.entry());
  }

  markStored() {
    for (const r of this.rows) r.markStored();
  }

  clearErrors() {
    for (const r of this.rows) r.clearError();
  }

  /** Clears the error of the row that holds `target`; false when no row does. */
  clearErrorOf(target) {
    const row = this.rows.find((r) => r.el.contains(target));
    row?.clearError();
    return !!row;
  }

  /** `env.<i>[.key|.value]` -> the control it names, or null when no such row. */
  showError(key, text) {
    const m = /^env[.[](\d+)\]?(?:\.(key|value|secret))?$/.exec(key);
    const row = m && this.rows[Number(m[1])];
    return row ? row.showError(m[2], text) : null;
  }
}
