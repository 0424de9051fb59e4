// The run dialog (SPEC §8.2): asks for a script's parameters before a run, with the input
// each type needs (number fields with min/max, a switch, a select, a textarea, a password
// field for secrets), defaults filled in and required ones marked. Values are checked here
// first; the server's 400 `params.<name>` errors are then shown on the same fields.
//
// A modal <dialog>: Enter submits (Ctrl/Cmd+Enter inside a textarea), Esc cancels, Tab stays
// inside it, and the focus goes back to where it was when the dialog closes.
import { h, uid } from "./dom.js";
import { hasStoredSecretDefault } from "./paramsEditor.js";

// What a run document shows instead of a secret value.
export const MASK = "***";
const NUMERIC = new Set(["int", "number"]);

function titleOf(p) {
  return p.label || p.name;
}

/** A string pattern as the server applies it (the whole value must match); null if JS cannot read it. */
function patternRegExp(pattern) {
  try {
    return new RegExp(`^(?:${pattern})$`, "u");
  } catch {
    return null;
  }
}

/** Why `raw` is not a valid value of `p`, or "" when it is. `raw` is the control's reading. */
export function checkValue(p, raw) {
  if (raw.missing) return raw.required ? "Required." : "";
  if (raw.badInput) return "Enter a number.";
  const v = raw.value;
  if (NUMERIC.has(p.type)) {
    if (!Number.isFinite(v)) return "Enter a number.";
    if (p.type === "int" && !Number.isInteger(v)) return "Enter a whole number.";
    if (typeof p.min === "number" && v < p.min) return `At least ${p.min}.`;
    if (typeof p.max === "number" && v > p.max) return `At most ${p.max}.`;
  }
  if (p.type === "enum" && Array.isArray(p.choices) && !p.choices.includes(v)) return "Pick one of the choices.";
  if ((p.type === "string" || p.type === "text" || p.type === "secret") && p.pattern) {
    const re = patternRegExp(p.pattern);
    if (re && !re.test(v)) return `Must match ${p.pattern}`;
  }
  return "";
}

class ParamInput {
  /** initial: the value to offer (a run's, or undefined for the default). */
  constructor(p, initial) {
    this.p = p;
    const masked = p.type === "secret" && initial === MASK;
    const start = initial !== undefined && !masked ? initial : p.default;
    // A secret run again must be typed again; a stored secret default is used when left empty.
    this.required = p.required === true || masked;
    this.storedDefault = p.type === "secret" && !masked && hasStoredSecretDefault(p);
    this.id = uid(`run-param-${p.name}`);
    this.err = h("p.field-error", { id: uid("run-param-err"), hidden: true });
    this.hint = p.description ? h("p.hint", { id: uid("run-param-hint") }, p.description) : null;
    this.control = this.build(start);
    this.control.id = this.id;
    this.control.name = p.name;
    if (this.required) this.control.setAttribute("aria-required", "true");
    this.control.setAttribute("aria-describedby", [this.hint?.id, this.err.id].filter(Boolean).join(" "));
    const label = h(
      "label.label",
      { for: this.id },
      titleOf(p),
      this.required ? h("span.required-mark", { "aria-hidden": "true", title: "required" }, " *") : null,
      p.label && p.label !== p.name ? h("code.param-name", p.name) : null,
    );
    let control = this.control;
    if (p.type === "bool") {
      // The switch says the value the script gets (as host scripts see it: true/false).
      const state = h("span.switch-text", { "aria-hidden": "true" }, String(this.control.checked));
      this.control.addEventListener("change", () => { state.textContent = String(this.control.checked); });
      control = h("label.switch", { for: this.id }, this.control, h("span.switch-track", { "aria-hidden": "true" }), state);
    }
    const note = masked
      ? h("p.hint", "Secret values are not kept in the run: type it again.")
      : this.storedDefault ? h("p.hint", "Leave empty to use the stored default.") : null;
    this.el = h("div.field.run-param", { dataset: { param: p.name } }, label, control, this.hint, note, this.err);
  }

  build(start) {
    const p = this.p;
    const text = start === undefined || start === null ? "" : String(start);
    if (p.type === "bool") return h("input", { type: "checkbox", role: "switch", checked: start === true || start === "true" });
    if (p.type === "text") {
      const ta = h("textarea", { rows: 4 });
      ta.value = text;
      return ta;
    }
    if (p.type === "enum") {
      const choices = Array.isArray(p.choices) ? p.choices : [];
      const sel = h("select", choices.includes(text) && p.required ? null : h("option", { value: "" }, p.required ? "Choose…" : "(none)"), choices.map((c) => h("option", { value: c }, c)));
      sel.value = choices.includes(text) ? text : "";
      return sel;
    }
    if (NUMERIC.has(p.type)) {
      return h("input", { type: "number", inputmode: p.type === "int" ? "numeric" : "decimal", step: p.type === "int" ? "1" : "any", min: p.min ?? undefined, max: p.max ?? undefined, value: text });
    }
    if (p.type === "secret") return h("input.mono", { type: "password", autocomplete: "new-password", spellcheck: "false", value: text });
    return h("input", { type: "text", autocomplete: "off", spellcheck: "false", value: text });
  }

  /** {missing, badInput, value, required} from the control. */
  read() {
    const c = this.control;
    const t = this.p.type;
    if (t === "bool") return { value: c.checked };
    if (NUMERIC.has(t)) {
      if (c.validity.badInput) return { badInput: true };
      if (c.value.trim() === "") return { missing: true, required: this.required };
      return { value: Number(c.value) };
    }
    if (c.value === "" && (t === "enum" || t === "secret" || this.required)) return { missing: true, required: this.required && !(this.storedDefault) };
    return { value: c.value };
  }

  setError(text) {
    this.err.hidden = !text;
    this.err.textContent = text;
    this.el.classList.toggle("invalid", !!text);
    if (text) this.control.setAttribute("aria-invalid", "true");
    else this.control.removeAttribute("aria-invalid");
  }
}

/** Lets Tab and Shift+Tab go round the dialog's own controls only. */
function trapFocus(dlg, e) {
  if (e.key !== "Tab") return;
  const items = [...dlg.querySelectorAll("input, select, textarea, button, a[href]")].filter((el) => !el.disabled && el.offsetParent !== null);
  if (!items.length) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (e.shiftKey && document.activeElement === first) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && document.activeElement === last) {
    e.preventDefault();
    first.focus();
  }
}

/**
 * Asks for `script.params` and calls submit(values) with typed values (left-out optional
 * ones are filled by the server's defaults). submit may throw an ApiError: its `params.<name>`
 * fields are shown on the fields and the dialog stays open. Resolves to submit's answer, or
 * null when cancelled. `initial` (a run's params) is offered instead of the defaults.
 */
export function runDialog({ script, initial = {}, title, submitLabel = "Run", submit }) {
  const inputs = (script.params || []).map((p) => new ParamInput(p, initial[p.name]));
  const returnTo = document.activeElement;
  const titleId = uid("run-dlg");
  const general = h("div.form-errors", { role: "alert", hidden: true });
  const runBtn = h("button.btn.primary", { type: "submit" }, `▶ ${submitLabel}`);
  const cancelBtn = h("button.btn", { type: "button" }, "Cancel");
  const form = h(
    "form.run-form",
    { novalidate: true },
    h("h2", { id: titleId }, title || `Run ${script.name}`),
    h("p.hint", "Fields marked * are required."),
    h("div.run-params", inputs.map((i) => i.el)),
    general,
    h("div.modal-actions", cancelBtn, runBtn),
  );
  const dlg = h("dialog.modal.run-dialog", { "aria-labelledby": titleId }, form);

  return new Promise((resolve) => {
    let result = null;
    let busy = false;
    const showErrors = (fields, message) => {
      let first = null;
      const rest = [];
      for (const [key, msg] of Object.entries(fields || {})) {
        const name = key.startsWith("params.") ? key.slice("params.".length) : null;
        const input = inputs.find((i) => i.p.name === name);
        const text = typeof msg === "string" ? msg : JSON.stringify(msg);
        if (input) {
          input.setError(text);
          first = first || input.control;
        } else rest.push(`${key}: ${text}`);
      }
      general.hidden = !rest.length && !!first;
      general.replaceChildren(h("strong", message || "The run was not started."), rest.length ? h("ul", rest.map((r) => h("li", r))) : null);
      (first || runBtn).focus();
    };
    const onSubmit = async (e) => {
      e.preventDefault();
      if (busy) return;
      general.hidden = true;
      const values = {};
      let first = null;
      for (const input of inputs) {
        const raw = input.read();
        const problem = checkValue(input.p, raw);
        input.setError(problem);
        if (problem) first = first || input.control;
        else if (!raw.missing) values[input.p.name] = raw.value;
      }
      if (first) {
        first.focus();
        return;
      }
      busy = true;
      runBtn.disabled = true;
      try {
        result = await submit(values);
        dlg.close();
      } catch (err) {
        showErrors(err.fields, err.message);
      } finally {
        busy = false;
        runBtn.disabled = false;
      }
    };
    form.addEventListener("submit", onSubmit);
    form.addEventListener("keydown", (e) => {
      // In a textarea Enter is a new line; Ctrl/Cmd+Enter submits from anywhere.
      // Browsers submit on Enter from text fields only; a switch or a select should too.
      const field = e.target.tagName === "INPUT" || e.target.tagName === "SELECT";
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey || (field && !e.shiftKey && !e.altKey))) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    dlg.addEventListener("keydown", (e) => trapFocus(dlg, e));
    cancelBtn.addEventListener("click", () => dlg.close());
    // Esc while the run is being asked for would lose its answer: wait for it.
    dlg.addEventListener("cancel", (e) => { if (busy) e.preventDefault(); });
    dlg.addEventListener("close", () => {
      // Secrets typed here do not stay in the page.
      for (const i of inputs) if (i.p.type === "secret") i.control.value = "";
      dlg.remove();
      resolve(result);
      // After the caller has reacted (it re-enables the button that opened the dialog).
      setTimeout(() => {
        if (returnTo && returnTo.isConnected) returnTo.focus();
      }, 0);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    (inputs[0]?.control || runBtn).focus();
  });
}
