// A run's live view: status badge, elapsed time, exit code, cancel, links, and the output.
// Follows server runs through SSE and browser runs through the local worker registry.
import { api } from "./api.js";
import { localRun } from "./browserRunner.js";
import { h } from "./dom.js";
import { formatDuration, formatExitCode, isActive, parseTime } from "./format.js";
import { visibleText } from "./invisible.js";
import { FindBar, toggle } from "./logTools.js";
import { OutputView } from "./output.js";
import { orderNote } from "./outputMode.js";
import { RunStream } from "./stream.js";
import { setStatusBadge, statusLabel, toast } from "./widgets.js";

// How much of the end of a run's output is compared with its outputTail.
const TAIL_PROBE = 256;

export class RunPanel {
  /** onChange(run) is called whenever the run's status or document changes. */
  constructor({ onChange, onTick, showOpenLink = true } = {}) {
    this.onChange = onChange;
    this.onTick = onTick; // called with the run each time the elapsed time is redrawn
    this.run = null;
    this.stream = null;
    this.unsubscribe = null;
    this.ticker = 0;
    this.badge = h("span.badge.status", { "data-testid": "run-status" });
    setStatusBadge(this.badge, "idle");
    this.elapsed = h("span.run-elapsed", { title: "Elapsed time", "data-testid": "run-elapsed" });
    this.exit = h("span.run-exit", { "data-testid": "run-exit", hidden: true });
    this.conn = h("span.run-conn", { hidden: true, role: "status" });
    // Why a run ended without its script's say (server shut down, executor lost, ...).
    this.reason = h("span.run-reason", { "data-testid": "run-reason", hidden: true });
    this.openLink = showOpenLink ? h("a.btn.ghost.small", { hidden: true, "data-link": true }, "Open run") : null;
    this.logLink = h("a.btn.ghost.small", { hidden: true, target: "_blank", rel: "noopener" }, "Stored log");
    this.cancelBtn = h("button.btn.small.danger-outline", { type: "button", hidden: true, onclick: () => this.cancel() }, "Cancel run");
    this.output = new OutputView();
    this.output.setEmptyText("Run the script to see its output here.");
    // The log viewer's tools (logTools.js), working while output still arrives.
    const find = this.output.find;
    this.find = new FindBar({ label: "Search the output", onQuery: (q) => find.setQuery(q), onStep: (d) => find.step(d) });
    find.onChange = (current, lines, total) => this.find.show(current, lines, total);
    this.wrap = toggle("Wrap", true, (on) => this.output.scroller.classList.toggle("nowrap", !on));
    this.times = toggle("Timestamps", false, (on) => this.output.setGutter("times", on));
    this.numbers = toggle("Line numbers", false, (on) => this.output.setGutter("ln", on));
    this.copyBtn = h("button.btn.ghost.small", { type: "button", onclick: () => this.copyOutput() }, "Copy");
    this.orderNote = orderNote(); // how stdout and stderr lines are ordered in this run
    this.el = h(
      "section.run-panel",
      { "aria-label": "Run output" },
      h(
        "div.run-bar",
        h("div.run-facts", this.badge, this.elapsed, this.exit, this.reason, this.conn),
        h("div.run-links", this.openLink, this.logLink, this.cancelBtn),
      ),
      h("div.log-toolbar.output-tools", this.find.el, this.wrap.el, this.times.el, this.numbers.el, this.copyBtn, this.orderNote.el),
      this.output.el,
    );
  }

  /** Shows a run (live or finished). `run` may be a document or just {id}. */
  async show(runOrId) {
    const runId = typeof runOrId === "string" ? runOrId : runOrId.id;
    // Only the latest show() goes on after its await (two calls for the same run, e.g. the
    // run-events feed and the Run button, must not open two streams).
    const gen = (this.showGen = (this.showGen || 0) + 1);
    this.detach();
    this.output.reset(); // keeps the search query: it applies to the new run's lines
    this.output.setEmptyText("Waiting for output…");
    this.output.setLogUrl(api.logUrl(runId));
    this.el.dataset.runId = runId;
    this.runId = runId;
    this.setRun(typeof runOrId === "string" ? { id: runId, status: "queued" } : runOrId);
    if (this.openLink) {
      this.openLink.href = `/admin/scripts/runs/${runId}`;
      this.openLink.hidden = false;
    }
    this.logLink.href = api.logUrl(runId);
    this.logLink.hidden = false;

    const local = localRun(runId);
    if (local && !local.finished) {
      this.setRun({ ...this.run, status: "running", startedAt: new Date(local.startedAt).toISOString() });
      this.unsubscribe = local.subscribe({
        onOutput: (stream, data) => this.output.push(stream, data),
        onEnd: (summary) => {
          this.setRun({ ...this.run, ...summary });
          this.afterEnd();
        },
      });
      return;
    }
    if (typeof runOrId === "string" || !runOrId.createdAt) {
      try {
        const doc = await api.getRun(runId);
        if (gen !== this.showGen) return;
        this.setRun(doc);
      } catch (err) {
        if (gen !== this.showGen) return;
        this.output.setEmptyText(`Cannot load this run: ${err.message}`);
        return;
      }
    }
    this.received = "";
    this.stream = new RunStream(api.streamUrl(runId), {
      onOutput: (stream, data, seq, at) => {
        this.received = (this.received + data).slice(-TAIL_PROBE * 2);
        this.output.push(stream, data, at);
      },
      onStatus: (data) => this.setRun({ ...this.run, ...data }),
      onEnd: (doc) => {
        this.setRun({ ...this.run, ...doc });
        this.showTailPastLogLimit();
        this.afterEnd();
      },
      onConnection: (state) => this.setConnection(state),
    });
  }

  /**
   * A finished run replays only its stored log, which stops at the server's size limit;
   * what came after (often how the run ended) is then only in the run's outputTail.
   * Shown when what we received does not end the way the run's output did.
   */
  showTailPastLogLimit() {
    const run = this.run;
    const tail = typeof run.outputTail === "string" ? run.outputTail : "";
    if (!run.meta || !run.meta.logTruncated || !tail) return;
    if (this.received.endsWith(tail.slice(-TAIL_PROBE))) return; // we saw it live
    this.output.push("stderr", "\n[scriptbox] the stored log ends at its size limit; the run's last output:\n");
    this.output.push("stdout", tail);
  }

  afterEnd() {
    if (this.output.isEmpty()) this.output.setEmptyText("The run produced no output.");
  }

  setConnection(state) {
    const active = this.run && isActive(this.run.status);
    if (state === "reconnecting" && active) {
      this.conn.hidden = false;
      this.conn.textContent = "reconnecting…";
    } else {
      this.conn.hidden = true;
    }
  }

  setRun(run) {
    this.run = run;
    this.orderNote.show(run);
    setStatusBadge(this.badge, run.status);
    this.el.dataset.status = run.status;
    const active = isActive(run.status);
    this.cancelBtn.hidden = !active;
    this.cancelBtn.disabled = false;
    const exit = formatExitCode(run.exitCode);
    this.exit.hidden = exit === "—";
    this.exit.textContent = this.exit.hidden ? "" : `exit ${exit}`;
    this.exit.classList.toggle("nonzero", !this.exit.hidden && run.exitCode !== 0);
    let reason = !active && run.meta && run.meta.error ? String(run.meta.error) : "";
    if (reason.toLowerCase() === statusLabel(run.status)) reason = ""; // the badge says it

    this.reason.textContent = visibleText(reason);
    this.reason.title = reason;
    this.reason.hidden = !reason;
    this.tick();
    if (active && !this.ticker) this.ticker = setInterval(() => this.tick(), 200);
    if (!active && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = 0;
    }
    if (!active) this.conn.hidden = true;
    this.onChange?.(run);
  }

  tick() {
    const run = this.run;
    if (!run) return;
    const start = parseTime(run.startedAt);
    if (start === null) {
      this.elapsed.textContent = run.status === "queued" ? "waiting" : "";
      return;
    }
    const end = parseTime(run.finishedAt);
    this.elapsed.textContent = formatDuration((end === null ? Date.now() : end) - start);
    this.onTick?.(run);
  }

  /** The output shown so far, as plain text, to the clipboard. */
  async copyOutput() {
    try {
      await navigator.clipboard.writeText(this.output.text());
      toast("Output copied", "success", 1500);
    } catch (err) {
      toast(`Cannot copy: ${err.message}`, "error");
    }
  }

  async cancel() {
    const runId = this.runId;
    if (!runId) return;
    this.cancelBtn.disabled = true;
    const local = localRun(runId);
    if (local && !local.finished) {
      local.cancel();
      return;
    }
    try {
      await api.cancelRun(runId);
    } catch (err) {
      if (err.status !== 409) toast(`Cancel failed: ${err.message}`, "error");
      this.cancelBtn.disabled = false;
    }
  }

  detach() {
    if (this.stream) this.stream.close();
    this.stream = null;
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = null;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = 0;
  }

  destroy() {
    this.detach();
    this.find.destroy();
    this.output.destroy();
  }
}
