// outputMode of a definition (docs/engine.md "Output mode"): "separate" keeps stdout and
// stderr on two pipes, told apart, in the order the server read them; "merged" puts stderr
// on the stdout pipe (2>&1), so everything is stdout in exactly the order it was written.
// The form's control, and what the run views say about the order of a run's lines.
import { h, uid } from "./dom.js";
import { snapshotOf } from "./format.js";

const LABELS = { separate: "Separate", merged: "Merged (2>&1)" };
const HINTS = {
  separate: "stderr is told apart, but lines of the two streams may show in the order they were read, not written.",
  merged: "stderr goes into stdout as with 2>&1: every line in the order it was written, none marked as stderr.",
  browser: "Browser runs keep stdout and stderr in the order they were written.",
};

/** The Output field's select and its one-line explanation; browser scripts have no choice. */
export class OutputModeControl {
  constructor(value) {
    this.select = h(
      "select",
      { id: uid("outputMode"), name: "outputMode", "data-testid": "output-mode" },
      Object.entries(LABELS).map(([v, label]) => h("option", { value: v }, label)),
    );
    this.select.value = value === "merged" ? "merged" : "separate";
    this.hint = h("p.hint", { id: uid("output-mode-hint"), "data-testid": "output-mode-hint" });
    this.select.addEventListener("change", () => this.update());
    this.type = "bash";
    this.update();
  }

  /** The script's type changed: browser runs have one mode, so the choice goes away. */
  setType(type) {
    this.type = type;
    if (type === "browser") this.select.value = "separate";
    this.select.disabled = type === "browser";
    this.update();
  }

  update() {
    this.hint.textContent = this.type === "browser" ? HINTS.browser : HINTS[this.select.value];
  }

  value() {
    return this.select.value;
  }
}

/** How a run's stdout and stderr lines are ordered: {mode, label, title} (null: not known yet). */
export function outputOrder(run) {
  const snap = snapshotOf(run);
  if (!snap.runner) return null;
  if (snap.outputMode === "merged") {
    return { mode: "merged", label: "stdout and stderr merged in exact order",
      title: "This run wrote stderr into stdout (output mode merged): every line is in the order it was written; none is marked as stderr." };
  }
  if (snap.runner === "browser") {
    return { mode: "exact", label: "stdout and stderr in written order",
      title: "A browser run reports its output in the order it was written." };
  }
  return { mode: "separate", label: "stdout and stderr in read order",
    title: "stdout and stderr are two pipes, shown in the order the server read them: a stderr line written just after a stdout line can show above it. Each stream alone is in exact order. For the exact order of both, set the script's Output streams to merged." };
}

/** A short note (with its explanation as a tooltip) saying how the lines are ordered. */
export function orderNote() {
  const el = h("span.order-note", { "data-testid": "order-note", hidden: true });
  return {
    el,
    show(run) {
      const order = outputOrder(run);
      el.hidden = !order;
      if (!order) return;
      el.textContent = order.label;
      el.title = order.title;
      el.dataset.mode = order.mode;
    },
  };
}

/** The "What ran" value of the run's output mode. */
export function outputModeFact(run) {
  const snap = snapshotOf(run);
  if (snap.outputMode === "merged") return "merged: stderr into stdout, in exact order";
  if (snap.runner === "browser") return "separate, in written order (browser run)";
  if (snap.outputMode === "separate") return "separate: stdout and stderr, in read order";
  return "separate (not recorded)";
}
