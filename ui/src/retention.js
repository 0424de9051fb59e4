// The retention fields of the editor (SPEC §8.6): how many days this script's finished runs
// are kept, and how many of the newest are kept whatever their age. Empty fields mean the
// server's default (SCRIPTBOX_RETENTION_DAYS); both empty saves `retention: null`.
import { h, uid } from "./dom.js";

/** A number field's value for the API: null when empty, a number when whole, else the raw text (the server says why). */
function wholeOrText(input) {
  const t = input.value.trim();
  if (t === "") return null;
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

export class RetentionSection {
  /** retention: the stored `retention` (or null); errorSlot(name) makes the form's error slot. */
  constructor({ retention, errorSlot }) {
    const r = retention || {};
    this.days = h("input.mono", { type: "text", inputmode: "numeric", id: uid("ret-days"), name: "retention-days", placeholder: "server default", value: r.days ?? "" });
    this.keep = h("input.mono", { type: "text", inputmode: "numeric", id: uid("ret-keep"), name: "retention-keepRuns", placeholder: "none", value: r.keepRuns ?? "" });
    const field = (name, label, control, hint) => {
      const err = errorSlot(`retention.${name}`);
      control.setAttribute("aria-describedby", err.id);
      return h("div.field", { dataset: { field: `retention.${name}` } }, h("label.label", { for: control.id }, label), control, h("p.hint", hint), err);
    };
    this.el = h(
      "fieldset.field.retention-field",
      { dataset: { field: "retention" } },
      h("legend", "History retention"),
      h(
        "div.grid-2",
        field("days", "Keep finished runs (days)", this.days, "Older runs and their output are deleted. 0 keeps them for ever; empty uses the server's default."),
        field("keepRuns", "Always keep the newest", this.keep, "This many finished runs stay whatever their age. Empty: none."),
      ),
      errorSlot("retention"),
    );
  }

  /** The `retention` to send: null when both fields are empty. */
  value() {
    const days = wholeOrText(this.days);
    const keepRuns = wholeOrText(this.keep);
    if (days === null && keepRuns === null) return null;
    return { days, keepRuns };
  }
}
