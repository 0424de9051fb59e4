// Values for a schedule's runs (SPEC §8.1 `schedule.params`, checked against §8.2): one input
// per declared parameter that is not a secret (schedules cannot hold secrets; a secret
// parameter takes its stored default). Left empty, a parameter gets its default at each run,
// so defaults are shown as placeholders and never copied into the schedule.
import { h, uid } from "./dom.js";

const NUMERIC = new Set(["int", "number"]);

function describeDefault(p) {
  if (p.default === undefined || p.default === null || p.default === "") return p.required ? "required" : "no default";
  return `default: ${p.default}`;
}

export class ScheduleParams {
  /** values: the stored `schedule.params`; errorSlot(name) makes the form's error slot. */
  constructor({ values, errorSlot }) {
    this.values = values && typeof values === "object" ? { ...values } : {};
    this.errorSlot = errorSlot;
    this.inputs = [];
    this.signature = null;
    this.list = h("div.schedule-params-list");
    this.el = h("div.schedule-params", { hidden: true }, h("p.label", "Parameters of scheduled runs"), this.list);
  }

  /** Rebuilds the inputs when the declarations changed; typed values are kept by name. */
  sync(decls) {
    const named = (decls || []).filter((p) => p.name);
    const signature = JSON.stringify(named.map((p) => (p.type === "secret" ? { name: p.name, type: p.type } : p)));
    if (signature === this.signature) return;
    this.signature = signature;
    if (this.inputs.length) this.values = this.value();
    this.inputs = named.filter((p) => p.type !== "secret").map((p) => this.input(p));
    const secrets = named.filter((p) => p.type === "secret").map((p) => this.secretNote(p));
    this.list.replaceChildren(...this.inputs.map((i) => i.el), ...secrets);
    this.el.hidden = !named.length;
  }

  /** A secret cannot be given here; its error (e.g. "is required") still needs a place. */
  secretNote(p) {
    const err = this.errorSlot(`schedule.params.${p.name}`);
    return h(
      "div.field",
      { dataset: { field: `schedule.params.${p.name}` } },
      h("span.label", p.label || p.name),
      h("p.hint", { id: uid("sched-secret") }, "Secret: scheduled runs use its stored default (set in its card above)."),
      err,
    );
  }

  input(p) {
    const id = uid(`sched-param-${p.name}`);
    const current = this.values[p.name];
    const text = current === undefined || current === null ? "" : String(current);
    let control;
    if (p.type === "bool" || p.type === "enum") {
      const choices = p.type === "bool" ? ["true", "false"] : p.choices || [];
      control = h("select", h("option", { value: "" }, `(${describeDefault(p)})`), choices.map((c) => h("option", { value: c }, c)));
      control.value = choices.includes(text) ? text : "";
    } else if (p.type === "text") {
      control = h("textarea", { rows: 2, placeholder: describeDefault(p) });
      control.value = text;
    } else {
      control = h("input", { type: NUMERIC.has(p.type) ? "number" : "text", step: p.type === "int" ? "1" : "any", placeholder: describeDefault(p), value: text });
    }
    control.id = id;
    control.name = `schedule-param-${p.name}`;
    const err = this.errorSlot(`schedule.params.${p.name}`);
    control.setAttribute("aria-describedby", err.id);
    const el = h("div.field", { dataset: { field: `schedule.params.${p.name}` } }, h("label.label", { for: id }, p.label || p.name), control, err);
    return { p, control, el };
  }

  /** `schedule.params`: the values given (typed); empty ones are left to the defaults. */
  value() {
    const out = {};
    for (const { p, control } of this.inputs) {
      const v = control.value;
      if (v === "") continue;
      if (p.type === "bool") out[p.name] = v === "true";
      else if (NUMERIC.has(p.type)) out[p.name] = Number.isFinite(Number(v)) ? Number(v) : v;
      else out[p.name] = v;
    }
    // Values for names not (or no longer) shown are dropped: the server would refuse them.
    return this.inputs.length || this.signature !== null ? out : this.values;
  }
}
