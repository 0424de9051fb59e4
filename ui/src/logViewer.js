// The log viewer of a finished run: the whole stored log (not the live panel's last
// 10,000 lines), shown a page at a time, with ANSI colours, line numbers, per-line times,
// search with a match count and next/previous, a wrap toggle, copy and downloads.
//
// Chunks come from GET …/runs/:runId/chunks in seq order, which is the order stdout and
// stderr were produced in (one sequence for both): the view is always the merged order.
// A line's time is the time of the chunk its first character came in. Output is data:
// text reaches the DOM only as text nodes (and invisible characters as markers).
import { AnsiParser } from "./ansi.js";
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { appendVisible, FindBar, formatClock, matchRanges, toggle } from "./logTools.js";
import { orderNote } from "./outputMode.js";
import { toast } from "./widgets.js";

export const PAGE_LINES = 1000;
const MAX_LINE_CHARS = 10_000;

export class LogViewer {
  /** `run` (optional): the run document, for the note on how its stdout and stderr are ordered. */
  constructor(runId, run = null) {
    this.runId = runId;
    this.lines = [];
    this.page = 0;
    this.matches = [];
    this.current = -1;
    this.query = "";
    this.find = new FindBar({ label: "Search the log", onQuery: (q) => this.runSearch(q), onStep: (d) => this.step(d) });
    this.wrap = toggle("Wrap", true, (on) => this.body.classList.toggle("nowrap", !on));
    this.times = toggle("Timestamps", false, (on) => this.body.classList.toggle("show-times", on));
    this.copyBtn = h("button.btn.small", { type: "button", onclick: () => this.copy() }, "Copy");
    const logUrl = api.logUrl(runId);
    this.downloads = h(
      "span.log-downloads",
      h("a.btn.small", { href: `${logUrl}?download=1&plain=1`, download: "" }, "Download"),
      h("a.btn.small.ghost", { href: `${logUrl}?download=1`, download: "", title: "With the terminal escape sequences (colours) as written" }, "… with colours"),
    );
    this.info = h("span.log-info.muted");
    this.orderNote = orderNote();
    if (run) this.orderNote.show(run);
    this.pager = h("div.log-pager", { hidden: true });
    this.body = h("div.output.log-body", { tabindex: "0", role: "log", "aria-label": "Run log" }, h("div.output-empty", "Loading the log…"));
    this.el = h(
      "section.log-viewer",
      { "aria-label": "Stored log" },
      h(
        "div.log-toolbar",
        this.find.el,
        this.wrap.el,
        this.times.el,
        this.copyBtn,
        this.downloads,
        this.info,
        this.orderNote.el,
      ),
      this.body,
      this.pager,
    );
  }

  /** Reads every stored chunk, page by page, then shows the last page (where runs end). */
  async load() {
    const parsers = { stdout: new AnsiParser(), stderr: new AnsiParser() };
    let line = null;
    const open = (at) => {
      line = { segs: [], text: "", at, err: false };
      this.lines.push(line);
    };
    let after = -1;
    try {
      for (;;) {
        const page = await api.getChunks(this.runId, after);
        if (this.destroyed) return;
        for (const chunk of page.chunks) {
          const stream = chunk.stream === "stderr" ? "stderr" : "stdout";
          parsers[stream].feed(chunk.data, (tok) => {
            if (!line) open(chunk.at);
            if (tok.t === "text") {
              if (line.text.length >= MAX_LINE_CHARS) return;
              line.segs.push({ text: tok.text, style: tok.style, stream });
              line.text += tok.text;
              if (stream === "stderr") line.err = true;
            } else if (tok.t === "nl") {
              line = null;
            } else if (tok.t === "cr" || tok.t === "erase") {
              line.segs = []; // a progress bar redraws its line: the last drawing is what stays
              line.text = "";
            }
          });
          after = chunk.seq;
        }
        if (page.next === null || page.next === undefined) break;
      }
    } catch (err) {
      replace(this.body, h("div.output-empty", `Cannot load the log: ${err.message}`));
      return;
    }
    if (this.lines.length && !this.lines[this.lines.length - 1].text) this.lines.pop();
    this.info.textContent = `${this.lines.length.toLocaleString()} lines`;
    this.showPage(Math.max(0, this.pageCount() - 1));
  }

  pageCount() {
    return Math.max(1, Math.ceil(this.lines.length / PAGE_LINES));
  }

  showPage(page) {
    this.page = page;
    const start = page * PAGE_LINES;
    const end = Math.min(this.lines.length, start + PAGE_LINES);
    const frag = document.createDocumentFragment();
    for (let i = start; i < end; i++) frag.appendChild(this.renderLine(i));
    if (!this.lines.length) frag.appendChild(h("div.output-empty", "The run produced no output."));
    replace(this.body, frag);
    this.renderPager(start, end);
  }

  renderPager(start, end) {
    const pages = this.pageCount();
    this.pager.hidden = pages <= 1;
    if (pages <= 1) return;
    replace(
      this.pager,
      h("button.btn.small", { type: "button", disabled: this.page === 0, onclick: () => this.showPage(0) }, "« First"),
      h("button.btn.small", { type: "button", disabled: this.page === 0, onclick: () => this.showPage(this.page - 1) }, "‹ Earlier"),
      h("span.muted.log-range", `Lines ${(start + 1).toLocaleString()}–${end.toLocaleString()} of ${this.lines.length.toLocaleString()} · page ${this.page + 1} of ${pages}`),
      h("button.btn.small", { type: "button", disabled: this.page === pages - 1, onclick: () => this.showPage(this.page + 1) }, "Later ›"),
      h("button.btn.small", { type: "button", disabled: this.page === pages - 1, onclick: () => this.showPage(pages - 1) }, "Last »"),
    );
  }

  renderLine(i) {
    const line = this.lines[i];
    const el = h(`div.line${line.err ? ".err" : ""}`, { dataset: { line: String(i + 1) } },
      h("span.ln", { "aria-hidden": "true" }, String(i + 1)),
      h("span.ts", { "aria-hidden": "true" }, formatClock(line.at)));
    const text = h("span.lt");
    const q = this.query;
    let pos = 0;
    for (const seg of line.segs) {
      const st = seg.style || {};
      let into = text;
      if (st.classes || st.css?.color || st.css?.backgroundColor || seg.stream === "stderr") {
        into = document.createElement("span");
        into.className = [st.classes, seg.stream === "stderr" ? "stderr" : ""].filter(Boolean).join(" ");
        if (st.css?.color) into.style.color = st.css.color;
        if (st.css?.backgroundColor) into.style.backgroundColor = st.css.backgroundColor;
        text.appendChild(into);
      }
      appendMarked(into, seg.text, q ? matchRanges(line.text, q) : null, pos);
      pos += seg.text.length;
    }
    el.appendChild(text);
    if (this.current >= 0 && this.matches[this.current] === i) el.classList.add("current-match");
    return el;
  }

  runSearch(query) {
    this.query = query;
    const q = query.toLowerCase();
    this.matches = [];
    this.total = 0;
    if (q) {
      this.lines.forEach((line, i) => {
        const n = matchRanges(line.text, query).length;
        if (n) {
          this.matches.push(i);
          this.total += n;
        }
      });
    }
    this.current = this.matches.length ? 0 : -1;
    this.reveal();
  }

  step(delta) {
    if (!this.matches.length) return;
    this.current = (this.current + delta + this.matches.length) % this.matches.length;
    this.reveal();
  }

  /** Shows the current match (its page, scrolled to it) and the count. */
  reveal() {
    this.find.show(this.current, this.matches.length, this.total);
    const target = this.current >= 0 ? this.matches[this.current] : -1;
    const page = target >= 0 ? Math.floor(target / PAGE_LINES) : this.page;
    this.showPage(page);
    if (target >= 0) this.body.querySelector(`[data-line="${target + 1}"]`)?.scrollIntoView({ block: "center" });
  }

  /** The whole log as plain text (no escapes), to the clipboard. */
  async copy() {
    const text = this.lines.map((l) => l.text).join("\n");
    try {
      await navigator.clipboard.writeText(text);
      toast(`Copied ${this.lines.length.toLocaleString()} lines`, "success", 1500);
    } catch (err) {
      toast(`Cannot copy: ${err.message}`, "error");
    }
  }

  destroy() {
    this.destroyed = true;
    this.find.destroy();
  }
}

/** Appends `text` (which starts at `offset` of its line), search matches inside <mark>. */
function appendMarked(el, text, ranges, offset) {
  let i = 0;
  for (const [s, e] of ranges || []) {
    const from = Math.max(s - offset, i);
    const to = Math.min(e - offset, text.length);
    if (to <= from) continue;
    appendVisible(el, text.slice(i, from));
    const mark = document.createElement("mark");
    appendVisible(mark, text.slice(from, to));
    el.appendChild(mark);
    i = to;
  }
  appendVisible(el, text.slice(i));
}
