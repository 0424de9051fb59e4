// The parameters editor of the script form (SPEC §8.2): a list of parameter cards that can
// be added, moved up and down (buttons, so the keyboard can do it) and removed; each card
// has name, label, type, required, description and the fields its type needs (choices,
// pattern, min/max) with a default of the right input kind. The server's `params.<i>.<field>`
// errors are shown on the card's field.
import { h, uid } from "./dom.js";

export const PARAM_TYPES = [
  ["string", "Text, one line"],
  ["text", "Text, several lines"],
  ["int", "Whole number"],
  ["number", "Number"],
  ["bool", "Switch (true/false)"],
  ["enum", "Choice from a list"],
  ["secret", "Secret"],
];
export const MAX_PARAMS = 50;
const NUMERIC = new Set(["int", "number"]);
const PATTERNED = new Set(["string", "text", "secret"]);

/** A secret param's stored default comes back as `default: null` with `hasDefault: true` (write-only). */
export function hasStoredSecretDefault(p) {
  return p.type === "secret" && p.hasDefault === true;
}

/** "" -> undefined, "12" -> 12, "x" -> "x" (left for the server to refuse next to the field). */
function numberOrText(text) {
  const t = text.trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

class ParamRow {
  constructor(param, actions) {
    this.errors = new Map(); // field -> error element
    this.storedDefault = hasStoredSecretDefault(param);
    this.name = this.control("name", h("input.mono", { type: "text", spellcheck: "false", autocomplete: "off", placeholder: "HOST_NAME", value: param.name || "" }));
    this.label = this.control("label", h("input", { type: "text", autocomplete: "off", placeholder: "shown in the run form", value: param.label || "" }));
    this.type = this.control("type", h("select", PARAM_TYPES.map(([v, l]) => h("option", { value: v }, l))));
    this.type.value = PARAM_TYPES.some(([v]) => v === param.type) ? param.type : "string";
    this.required = this.control("required", h("input", { type: "checkbox", role: "switch", checked: param.required === true }));
    this.description = this.control("description", h("input", { type: "text", autocomplete: "off", value: param.description || "" }));
    this.choices = this.control("choices", h("textarea.mono", { rows: 3, spellcheck: "false" }));
    this.choices.value = Array.isArray(param.choices) ? param.choices.join("\n") : "";
    this.pattern = this.control("pattern", h("input.mono", { type: "text", spellcheck: "false", autocomplete: "off", placeholder: "^[a-z0-9.-]+$", value: param.pattern ?? "" }));
    this.min = this.control("min", h("input", { type: "number", step: "any", value: param.min ?? "" }));
    this.max = this.control("max", h("input", { type: "number", step: "any", value: param.max ?? "" }));
    this.defaultHost = h("div.param-default");
    this.rowError = h("p.field-error", { id: uid("param-err"), hidden: true });
    this.errors.set("", this.rowError);
    this.upBtn = h("button.btn.icon.param-up", { type: "button", onclick: () => actions.move(this, -1) }, "↑");
    this.downBtn = h("button.btn.icon.param-down", { type: "button", onclick: () => actions.move(this, 1) }, "↓");
    this.removeBtn = h("button.btn.icon.param-remove", { type: "button", onclick: () => actions.remove(this) }, "✕");
    this.legend = h("legend.param-legend");
    this.name.addEventListener("input", () => this.renumber(this.n));
    this.type.addEventListener("change", () => this.showTypeFields(this.defaultValueText()));
    this.choices.addEventListener("input", () => this.fillEnumDefault(this.defaultControl?.value));

    const field = (name, label, control, target = control) => h(
      `div.field.param-field-${name}`,
      { dataset: { paramField: name } },
      h("label.label", { for: target.id }, label),
      control,
      this.errors.get(name),
    );
    const toggle = h("label.switch", { for: this.required.id }, this.required, h("span.switch-track", { "aria-hidden": "true" }), h("span.switch-text", "Must be given"));
    this.fields = {
      pattern: field("pattern", "Pattern (regex)", this.pattern),
      min: field("min", "Minimum", this.min),
      max: field("max", "Maximum", this.max),
      choices: field("choices", "Choices (one per line)", this.choices),
    };
    this.el = h(
      "fieldset.param-row",
      this.legend,
      h("div.param-tools", this.upBtn, this.downBtn, this.removeBtn),
      h("div.param-grid", field("name", "Name", this.name), field("type", "Type", this.type), field("label", "Label", this.label), field("required", "Required", toggle, this.required)),
      field("description", "Description", this.description),
      h("div.param-grid.param-typed", this.fields.pattern, this.fields.min, this.fields.max, this.fields.choices, this.defaultHost),
      this.rowError,
    );
    this.showTypeFields(this.initialDefault(param));
  }

  /** Gives a control an id, a name and an error slot it is described by. */
  control(field, el) {
    el.id = uid(`param-${field}`);
    el.name = `param-${field}`;
    const err = h("p.field-error", { id: uid(`err-param-${field}`), hidden: true });
    this.errors.set(field, err);
    el.setAttribute("aria-describedby", err.id);
    return el;
  }

  initialDefault(p) {
    if (p.default === undefined || p.default === null) return "";
    return typeof p.default === "boolean" ? p.default : String(p.default);
  }

  renumber(n) {
    this.n = n;
    const name = this.name.value.trim();
    this.legend.textContent = name ? `Parameter ${n}: ${name}` : `Parameter ${n}`;
    const what = name || `parameter ${n}`;
    this.upBtn.setAttribute("aria-label", `Move ${what} up`);
    this.downBtn.setAttribute("aria-label", `Move ${what} down`);
    this.removeBtn.setAttribute("aria-label", `Remove ${what}`);
    this.upBtn.title = "Move up";
    this.downBtn.title = "Move down";
    this.removeBtn.title = "Remove";
  }

  defaultValueText() {
    const c = this.defaultControl;
    if (!c) return "";
    return c.type === "checkbox" ? c.checked : c.value;
  }

  /** Shows the fields the type uses and a default control of the right kind. */
  showTypeFields(previous) {
    const t = this.type.value;
    this.fields.pattern.hidden = !PATTERNED.has(t);
    this.fields.min.hidden = !NUMERIC.has(t);
    this.fields.max.hidden = !NUMERIC.has(t);
    this.fields.choices.hidden = t !== "enum";
    for (const el of [this.min, this.max]) el.step = t === "int" ? "1" : "any";
    this.defaultControl = this.makeDefault(t, previous);
    this.errors.set("default", this.errors.get("default") || h("p.field-error", { id: uid("err-param-default"), hidden: true }));
    const err = this.errors.get("default");
    this.defaultControl.id = uid("param-default");
    this.defaultControl.name = "param-default";
    this.defaultControl.setAttribute("aria-describedby", err.id);
    const label = h("label.label", { for: this.defaultControl.id }, "Default");
    let control = this.defaultControl;
    if (t === "bool") {
      control = h("label.switch", { for: this.defaultControl.id }, this.defaultControl, h("span.switch-track", { "aria-hidden": "true" }), h("span.switch-text", "On by default"));
    } else if (t === "secret") {
      control = this.secretDefaultBox();
    }
    this.defaultHost.replaceChildren(h("div.field", { dataset: { paramField: "default" } }, label, control, err));
    this.defaultHost.firstChild.classList.toggle("param-default-wide", t === "text");
  }

  makeDefault(t, previous) {
    const text = typeof previous === "boolean" ? "" : previous || "";
    if (t === "bool") return h("input", { type: "checkbox", role: "switch", checked: previous === true || previous === "true" });
    if (t === "text") {
      const ta = h("textarea", { rows: 2 });
      ta.value = text;
      return ta;
    }
    if (t === "enum") {
      const sel = h("select");
      this.fillEnumDefault(text, sel);
      return sel;
    }
    if (NUMERIC.has(t)) return h("input", { type: "number", step: t === "int" ? "1" : "any", value: text });
    if (t === "secret") return h("input.mono", { type: "password", autocomplete: "new-password", spellcheck: "false", placeholder: "none" });
    return h("input", { type: "text", autocomplete: "off", value: text });
  }

  /** A stored secret default shows "set" with Replace and Clear, never the value. */
  secretDefaultBox() {
    const input = this.defaultControl;
    const replace = h("button.btn.small", { type: "button", "aria-label": "Replace the secret default", onclick: () => {
      this.storedDefault = false;
      this.replacing = true; // left empty, the stored default goes
      input.placeholder = "none (empty removes the stored default)";
      box.replaceWith(input);
      input.focus();
      this.el.dispatchEvent(new Event("input", { bubbles: true }));
    } }, "Replace");
    const box = h("div.env-stored", h("span.secret-set", "set"), replace);
    return this.storedDefault ? h("div.param-secret-default", box) : input;
  }

  choiceList() {
    return this.choices.value.split("\n").map((c) => c.trim()).filter((c) => c !== "");
  }

  fillEnumDefault(current, sel = this.defaultControl) {
    if (!sel || sel.tagName !== "SELECT") return;
    sel.replaceChildren(h("option", { value: "" }, "(none)"), ...this.choiceList().map((c) => h("option", { value: c }, c)));
    sel.value = this.choiceList().includes(current) ? current : "";
  }

  /** The declaration to send; only the fields this type uses. */
  value() {
    const t = this.type.value;
    const p = { name: this.name.value.trim(), type: t, required: this.required.checked };
    if (this.label.value.trim()) p.label = this.label.value.trim();
    if (this.description.value.trim()) p.description = this.description.value.trim();
    if (t === "enum") p.choices = this.choiceList();
    if (PATTERNED.has(t) && this.pattern.value !== "") p.pattern = this.pattern.value;
    if (NUMERIC.has(t)) {
      const min = numberOrText(this.min.value);
      const max = numberOrText(this.max.value);
      if (min !== undefined) p.min = min;
      if (max !== undefined) p.max = max;
    }
    const d = this.defaultOf(t);
    if (d !== undefined) p.default = d;
    return p;
  }

  defaultOf(t) {
    const c = this.defaultControl;
    if (t === "bool") return c.checked;
    // null keeps the stored secret, "" removes it, no default at all says there is none.
    if (t === "secret") return this.storedDefault ? null : c.value !== "" || this.replacing ? c.value : undefined;
    if (NUMERIC.has(t)) return numberOrText(c.value);
    return c.value === "" ? undefined : c.value;
  }

  /** After a save the server holds a typed secret default: show "set" from now on. */
  markStored() {
    if (this.type.value !== "secret" || this.storedDefault) return;
    this.storedDefault = this.defaultControl.value !== "";
    this.replacing = false;
    this.defaultControl.value = "";
    this.showTypeFields("");
  }

  clearErrors() {
    for (const el of this.errors.values()) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const el of this.el.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of this.el.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
  }

  /** Shows `text` at the card's `field` ("" or unknown: under the card); returns the control. */
  showError(field, text) {
    const slot = this.errors.get(field) || this.rowError;
    slot.hidden = false;
    slot.textContent = slot.textContent ? `${slot.textContent}; ${text}` : text;
    const box = slot.closest(".field");
    if (slot === this.rowError || !box) {
      this.name.setAttribute("aria-invalid", "true");
      return this.name;
    }
    box.classList.add("invalid");
    const ctl = box.querySelector("input, select, textarea, button");
    ctl?.setAttribute("aria-invalid", "true");
    return ctl;
  }
}

export class ParamsEditor {
  /** params: the stored declarations; errorSlot: the form's slot for errors about `params` itself. */
  constructor({ params, errorSlot, onChange }) {
    this.onChange = onChange;
    this.rows = [];
    this.list = h("div.param-rows");
    this.announce = h("p.visually-hidden", { role: "status", "aria-live": "polite" });
    this.addBtn = h("button.btn.small.param-add", { type: "button", onclick: () => this.add() }, "+ Add parameter");
    this.actions = { move: (row, by) => this.move(row, by), remove: (row) => this.remove(row) };
    this.el = h(
      "fieldset.field.params-field",
      { dataset: { field: "params" } },
      h("legend", "Parameters"),
      h("p.hint", "Asked for in a form before each run; host scripts get each as an environment variable, vm2 and browser scripts as params.NAME."),
      this.list,
      errorSlot,
      h("div.env-actions", this.addBtn),
      this.announce,
    );
    for (const p of Array.isArray(params) ? params : []) this.append(new ParamRow(p, this.actions));
    this.renumber();
  }

  append(row) {
    this.rows.push(row);
    this.list.appendChild(row.el);
  }

  add() {
    const row = new ParamRow({ type: "string" }, this.actions);
    this.append(row);
    this.renumber();
    row.name.focus();
    this.onChange?.();
  }

  move(row, by) {
    const from = this.rows.indexOf(row);
    const to = from + by;
    if (to < 0 || to >= this.rows.length) return;
    this.rows.splice(from, 1);
    this.rows.splice(to, 0, row);
    if (by < 0) this.list.insertBefore(row.el, this.rows[to + 1].el);
    else this.list.insertBefore(row.el, this.rows[to - 1].el.nextSibling);
    this.renumber();
    // Keep the focus on the button that was pressed, or its sibling once it cannot move further.
    const pressed = by < 0 ? row.upBtn : row.downBtn;
    (pressed.disabled ? (by < 0 ? row.downBtn : row.upBtn) : pressed).focus();
    this.announce.textContent = `${row.legend.textContent.replace(/^Parameter \d+: ?/, "") || "Parameter"} moved to position ${to + 1} of ${this.rows.length}`;
    this.onChange?.();
  }

  remove(row) {
    const at = this.rows.indexOf(row);
    row.el.remove();
    this.rows.splice(at, 1);
    this.renumber();
    (this.rows[at]?.removeBtn || this.rows[at - 1]?.removeBtn || this.addBtn).focus();
    this.announce.textContent = "Parameter removed";
    this.onChange?.();
  }

  renumber() {
    this.rows.forEach((r, i) => {
      r.renumber(i + 1);
      r.upBtn.disabled = i === 0;
      r.downBtn.disabled = i === this.rows.length - 1;
    });
    this.addBtn.disabled = this.rows.length >= MAX_PARAMS;
  }

  value() {
    return this.rows.map((r) => r.value());
  }

  markStored() {
    for (const r of this.rows) r.markStored();
  }

  clearErrors() {
    for (const r of this.rows) r.clearErrors();
  }

  /** Clears the error of the card field that holds `target`; false when no card does. */
  clearErrorOf(target) {
    const row = this.rows.find((r) => r.el.contains(target));
    if (!row) return false;
    const box = target.closest?.("[data-param-field]");
    const slot = box ? row.errors.get(box.dataset.paramField) : null;
    const cardError = !row.rowError.hidden;
    for (const el of slot ? [slot, row.rowError] : row.errors.values()) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const el of (box || row.el).querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    box?.classList.remove("invalid");
    // A card-level error is marked on the name field: it goes with that error.
    if (cardError && row.errors.get("name").hidden) row.name.removeAttribute("aria-invalid");
    return true;
  }

  /** `params.<i>[.<field>[.<j>]]` -> the control it names, or null when it names no card. */
  showError(key, text) {
    const m = /^params\.(\d+)(?:\.([A-Za-z]+))?/.exec(key);
    const row = m && this.rows[Number(m[1])];
    return row ? row.showError(m[2] || "", text) : null;
  }
}
