// The definition form: every field of a definition, the code editor, the env and parameters
// editors, and the server's field-level errors shown next to the fields they name.
import { createCodeEditor } from "./codeEditor.js";
import { h, uid } from "./dom.js";
import { EnvEditor } from "./envEditor.js";
import { timeoutHint } from "./format.js";
import { OutputModeControl } from "./outputMode.js";
import { ParamsEditor } from "./paramsEditor.js";
import { RetentionSection } from "./retention.js";
import { ScheduleSection } from "./schedule.js";
import { DEFAULT_TIMEOUT_MS } from "./vocabulary.js";

export const RUNNERS = { bash: ["host"], node: ["host", "vm2"], browser: ["browser"] };
const RUNNER_LABEL = { host: "host", vm2: "vm2 (sandbox)", browser: "browser (Web Worker)" };
const TYPE_LABEL = { bash: "bash", node: "node", browser: "browser JS" };

export const EMPTY_SCRIPT = {
  name: "",
  codeIdentifier: "",
  description: "",
  type: "bash",
  runner: "host",
  script: "",
  defaultWorkingDirectory: "",
  env: [],
  timeoutMs: DEFAULT_TIMEOUT_MS,
  enabled: true,
  outputMode: "separate",
  tags: [],
  schedule: null,
  retention: null,
};

// The body a new script starts with, per type/runner: how that runner reads its env.
const STARTERS = {
  "bash/host": '#!/usr/bin/env bash\nset -euo pipefail\n\n# Variables from "Environment variables" below: "$NAME"\necho "Hello from $(hostname)"\n',
  "node/host": '// Runs as `node -e` on the server: require() and process work.\n// Variables from "Environment variables" below: process.env.NAME\nconst os = require("node:os");\nconsole.log("Hello from", os.hostname(), "on node", process.version);\n',
  "node/vm2": '// Runs in a vm2 sandbox: no require, no process, no files or network.\n// Variables from "Environment variables" below: the frozen env object, env.NAME\nconsole.log("Hello from the sandbox:", Object.keys(env).length, "variables");\n',
  "browser/browser": '// Runs in a Web Worker in this page: no DOM, no network, a stub navigator.\n// Variables from "Environment variables" below: the frozen env object, env.NAME\nconsole.log("Hello from a Web Worker");\nawait new Promise((r) => setTimeout(r, 500));\nconsole.log("done");\n',
};
// Starters of earlier versions: a script still holding one of them is untouched too.
const OLD_STARTERS = [
  '#!/usr/bin/env bash\nset -euo pipefail\n\necho "Hello from $(hostname)"\n',
  'console.log("Hello from node", process.version);\n',
  'console.log("Hello from a Web Worker");\nawait new Promise((r) => setTimeout(r, 500));\nconsole.log("done");\n',
];
const UNTOUCHED = new Set([...Object.values(STARTERS), ...OLD_STARTERS].map((t) => t.trim()));

// One line under the Runner field: how this runner differs from the others.
export const RUNNER_HINT = {
  "bash/host": "bash -lc on the server. Variables: $NAME.",
  "node/host": "node -e on the server, with require() and process. Variables: process.env.NAME.",
  "node/vm2": "A vm2 sandbox: no require, no process, no files. Variables: the frozen env object (env.NAME).",
  "browser/browser": "A Web Worker in this page: no DOM or network, navigator is a stub. Variables: the frozen env (env.NAME).",
};

export function sampleFor(type, runner = RUNNERS[type]?.[0]) {
  return STARTERS[`${type}/${runner}`] || "";
}

/** True when `text` is empty or a starter nobody edited (so it may be replaced). */
export function isUntouchedStarter(text) {
  return !text.trim() || UNTOUCHED.has(text.trim());
}

/** Turns "My Script!" into "my-script". */
export function slugify(name) {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^[-_]+|-+$/g, "")
    .slice(0, 64);
}

export class ScriptForm {
  constructor({ script, isNew, onChange, onSubmit }) {
    this.onChange = onChange;
    this.isNew = isNew;
    this.identTouched = !isNew;
    this.errorSlots = new Map(); // field name -> error element
    this.hadParams = Array.isArray(script?.params);
    const f = { ...EMPTY_SCRIPT, ...script };

    this.name = this.input("name", "text", f.name, { autocomplete: "off", maxlength: 200, required: true });
    this.ident = this.input("codeIdentifier", "text", f.codeIdentifier, { autocomplete: "off", spellcheck: "false", class: "mono", required: true });
    this.ident.addEventListener("input", () => { this.identTouched = this.ident.value !== ""; });
    this.name.addEventListener("input", () => {
      if (this.isNew && !this.identTouched) this.ident.value = slugify(this.name.value);
    });
    this.description = h("textarea", { id: uid("description"), name: "description", rows: 2 });
    this.description.value = f.description || "";
    this.tags = this.input("tags", "text", (Array.isArray(f.tags) ? f.tags : []).join(", "), { autocomplete: "off", placeholder: "backup, nightly" });
    this.type = h("select", { id: uid("type"), name: "type" }, Object.keys(RUNNERS).map((t) => h("option", { value: t }, TYPE_LABEL[t])));
    this.type.value = f.type in RUNNERS ? f.type : "bash";
    this.runner = h("select", { id: uid("runner"), name: "runner" });
    this.fillRunners(f.runner);
    this.cwd = this.input("defaultWorkingDirectory", "text", f.defaultWorkingDirectory || "", { class: "mono", placeholder: "/absolute/path (empty: the server's default)", spellcheck: "false" });
    this.timeout = this.input("timeoutMs", "text", f.timeoutMs ?? "", { inputmode: "numeric", class: "mono", placeholder: "300000" });
    this.timeoutHint = h("span.hint-inline", timeoutHint(this.timeout.value));
    this.timeout.addEventListener("input", () => { this.timeoutHint.textContent = timeoutHint(this.timeout.value); });
    this.enabled = h("input", { type: "checkbox", id: uid("enabled"), name: "enabled", role: "switch", checked: f.enabled !== false });
    this.outputMode = new OutputModeControl(f.outputMode);

    this.type.addEventListener("change", () => {
      const before = this.runner.value;
      this.fillRunners(before);
      this.code.setType(this.type.value);
      this.updateTypeHints();
      this.replaceStarter();
    });
    this.runner.addEventListener("change", () => {
      this.updateTypeHints();
      this.replaceStarter();
    });

    this.codeHost = h("div.code-host");
    this.env = new EnvEditor({ env: f.env, onChange: () => this.changed() });
    this.params = new ParamsEditor({ params: f.params, errorSlot: this.errorSlot("params"), onChange: () => this.changed() });
    this.formErrors = h("div.form-errors", { role: "alert", hidden: true });
    this.cwdHint = h("p.hint", { id: uid("cwd-hint") });
    this.runnerHint = h("p.hint.runner-hint", { id: uid("runner-hint"), "data-testid": "runner-hint" });
    this.codeHint = h("p.hint.code-hint", { id: uid("code-hint"), "aria-live": "polite" });

    this.el = h(
      "form.script-form",
      { novalidate: true, autocomplete: "off", onsubmit: (e) => { e.preventDefault(); onSubmit?.(); } },
      h(
        "div.grid-2",
        this.field("name", "Name", this.name),
        this.field("codeIdentifier", "Code identifier", this.ident, h("p.hint", "Lowercase letters, digits, - and _; unique.")),
      ),
      h(
        "div.grid-4",
        this.field("type", "Type", this.type),
        this.field("runner", "Runner", this.runner, this.runnerHint),
        this.field("timeoutMs", "Timeout (ms)", h("div.with-hint", this.timeout, this.timeoutHint)),
        this.field("enabled", "Enabled", h("label.switch", { for: this.enabled.id }, this.enabled, h("span.switch-track", { "aria-hidden": "true" }), h("span.switch-text", "Can be run"))),
      ),
      this.field("script", "Script", this.codeHost, this.codeHint, true),
      h(
        "div.grid-2",
        this.field("description", "Description", this.description),
        this.field("tags", "Tags", this.tags, h("p.hint", { id: uid("tags-hint") }, "Comma-separated; the list groups scripts by tag.")),
      ),
      h(
        "div.grid-2",
        this.field("defaultWorkingDirectory", "Working directory", this.cwd, this.cwdHint),
        this.field("outputMode", "Output streams", this.outputMode.select, this.outputMode.hint),
      ),
      h(
        "fieldset.field.env-field",
        { dataset: { field: "env" } },
        h("legend", "Environment variables"),
        this.env.body,
        this.errorSlot("env"),
        h("div.env-actions", this.env.addBtn),
      ),
      this.params.el,
      (this.schedule = new ScheduleSection({ schedule: f.schedule, errorSlot: (name) => this.errorSlot(name), onChange: () => this.changed() })).el,
      (this.retention = new RetentionSection({ retention: f.retention, errorSlot: (name) => this.errorSlot(name) })).el,
      this.formErrors,
    );
    // A field the operator changes loses its (now stale) error at once.
    this.el.addEventListener("input", (e) => { this.clearErrorOf(e.target); this.changed(); });
    this.el.addEventListener("change", (e) => { this.clearErrorOf(e.target); this.changed(); });

    // The code editor needs its host in the document to measure; it works detached too.
    this.code = createCodeEditor({
      parent: this.codeHost, doc: f.script || "", type: this.type.value, label: "Script",
      describedBy: this.codeHint.id, onHint: (text) => { this.codeHint.textContent = text; },
      onChange: () => { this.clearErrorOf(this.codeHost); this.changed(); },
    });
    this.updateTypeHints();
    this.schedule.syncParams(this.params.value());
  }

  input(name, type, value, attrs = {}) {
    const el = h("input", { id: uid(name), name, type, ...attrs });
    el.value = value === null || value === undefined ? "" : String(value);
    return el;
  }

  /** A labelled field with its error slot; errors are wired with aria-describedby. */
  field(name, label, control, hint = null, isCode = false) {
    const err = this.errorSlot(name);
    const target = control.matches?.("input, select, textarea") ? control : control.querySelector?.("input, select, textarea");
    const labelEl = isCode
      ? h("span.label", { id: uid("lbl") }, label)
      : h("label.label", { for: target ? target.id : undefined }, label);
    if (target) {
      const ids = [err.id];
      if (hint && hint.id) ids.push(hint.id);
      target.setAttribute("aria-describedby", ids.join(" "));
    }
    // The code editor's hint sits above it, where it is seen while the editor has focus.
    if (isCode) return h("div.field.code-field", { dataset: { field: name } }, h("div.code-head", labelEl, hint), control, err);
    return h("div.field", { dataset: { field: name } }, labelEl, control, hint, err);
  }

  errorSlot(name) {
    const el = h("p.field-error", { id: uid(`err-${name}`), hidden: true, "data-error-for": name });
    this.errorSlots.set(name, el);
    return el;
  }

  fillRunners(preferred) {
    const allowed = RUNNERS[this.type.value] || ["host"];
    this.runner.textContent = "";
    for (const r of allowed) this.runner.appendChild(h("option", { value: r }, RUNNER_LABEL[r] || r));
    this.runner.value = allowed.includes(preferred) ? preferred : allowed[0];
    this.runner.disabled = allowed.length === 1;
  }

  /** The type or runner changed: a body that is still a starter becomes the new one. */
  replaceStarter() {
    if (!isUntouchedStarter(this.code.getValue())) return; // the operator's code is never overwritten
    const starter = sampleFor(this.type.value, this.runner.value);
    if (starter && starter !== this.code.getValue()) this.code.setValue(starter);
  }

  updateTypeHints() {
    this.runnerHint.textContent = RUNNER_HINT[`${this.type.value}/${this.runner.value}`] || "";
    const t = this.type.value;
    this.cwdHint.textContent = t === "browser"
      ? "Not used by browser scripts: they run in a Web Worker in this page, without network access."
      : "Checked when a run starts.";
    this.cwd.disabled = t === "browser";
    this.outputMode.setType(t);
  }

  changed() {
    this.schedule?.syncParams(this.params.value());
    this.onChange?.();
  }

  /** The document to send to the server. */
  value() {
    const t = this.timeout.value.trim();
    let timeoutMs;
    if (t === "") timeoutMs = undefined;
    else if (/^\d+$/.test(t)) timeoutMs = Number(t);
    else timeoutMs = t; // let the server say what is wrong with it, next to the field
    const doc = {
      name: this.name.value,
      codeIdentifier: this.ident.value.trim(),
      description: this.description.value,
      type: this.type.value,
      runner: this.runner.value,
      script: this.code.getValue(),
      defaultWorkingDirectory: this.cwd.value.trim(),
      env: this.env.value(),
      enabled: this.enabled.checked,
      outputMode: this.outputMode.value(),
      tags: this.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      schedule: this.schedule.value(),
      retention: this.retention.value(),
    };
    if (timeoutMs !== undefined) doc.timeoutMs = timeoutMs;
    // Sent when there is something to say: [] clears the parameters a script had.
    const params = this.params.value();
    if (params.length || this.hadParams) doc.params = params;
    return doc;
  }

  /** Sets `enabled` without marking anything else changed (the list toggled it). */
  setEnabled(on) {
    this.enabled.checked = on;
  }

  /** The server now holds the secrets typed into the form: show them as "set". */
  markSecretsStored() {
    this.env.markStored();
    this.params.markStored();
  }

  /** Hides the error of the field (env row, parameter card field) that holds `target`. */
  clearErrorOf(target) {
    if (this.env.clearErrorOf(target)) {
      const listError = this.errorSlots.get("env"); // e.g. a duplicate key
      listError.hidden = true;
      listError.textContent = "";
      return; // the other rows keep theirs
    }
    if (this.params.clearErrorOf(target)) return;
    const field = target.closest?.("[data-field]");
    if (!field || !this.el.contains(field)) return;
    const name = field.dataset.field;
    for (const [key, slot] of this.errorSlots) {
      if (key !== name && !key.startsWith(`${name}.`)) continue;
      slot.hidden = true;
      slot.textContent = "";
    }
    if (field.classList.contains("invalid")) field.classList.remove("invalid");
    for (const el of field.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  clearErrors() {
    for (const el of this.errorSlots.values()) {
      el.hidden = true;
      el.textContent = "";
    }
    this.env.clearErrors();
    this.params.clearErrors();
    for (const el of this.el.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of this.el.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
    this.formErrors.hidden = true;
    this.formErrors.textContent = "";
  }

  /** Shows `fields` from an error body next to their fields; returns the first bad control. */
  showErrors(fields, message) {
    this.clearErrors();
    let first = null;
    const leftovers = [];
    for (const [key, msg] of Object.entries(fields || {})) {
      let text = typeof msg === "string" ? msg : JSON.stringify(msg);
      const tag = /^tags\.(\d+)$/.exec(key);
      if (tag) text = `tag ${Number(tag[1]) + 1}: ${text}`;
      const inRow = this.env.showError(key, text) || this.params.showError(key, text);
      if (inRow) {
        first = first || inRow;
        continue;
      }
      const slot = this.errorSlots.get(key) || this.errorSlots.get(key.split(".")[0]);
      if (slot) {
        slot.hidden = false;
        slot.textContent = slot.textContent ? `${slot.textContent}; ${text}` : text;
        const field = slot.closest(".field");
        if (field) {
          field.classList.add("invalid");
          const ctl = field.querySelector("input, select, textarea, .cm-content");
          if (ctl) {
            ctl.setAttribute("aria-invalid", "true");
            first = first || ctl;
          }
        }
      } else {
        leftovers.push(`${key}: ${text}`);
      }
    }
    if (leftovers.length || (message && !Object.keys(fields || {}).length)) {
      this.formErrors.hidden = false;
      this.formErrors.textContent = "";
      if (message) this.formErrors.appendChild(h("strong", message));
      if (leftovers.length) this.formErrors.appendChild(h("ul", leftovers.map((l) => h("li", l))));
    }
    return first;
  }

  destroy() {
    this.schedule.destroy();
    this.code.destroy();
  }
}
