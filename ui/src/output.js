// The output panel: renders run output with ANSI colours, incrementally and bounded.
//
// Chunks are queued by push() and turned into DOM once per animation frame, so a fast
// stream (10 MB) costs one batched DOM update per frame rather than one per chunk. The
// page keeps at most MAX_LINES lines / MAX_CHARS characters; older lines are dropped and a
// notice points to the stored log. Output is data: every piece of text reaches the DOM as
// a text node or a span's textContent, never as markup; bidi controls and other invisible
// characters appear as visible markers (invisible.js), never applied.
//
// Each line carries its number in the whole output (data-ln) and the time its first text
// was read (data-ts): the server's time from the output event, else (browser runs, older
// servers) when it reached the page; CSS shows them in the gutter on request, as generated
// content, so they are never part of the text that is copied or searched.
import { AnsiParser } from "./ansi.js";
import { h } from "./dom.js";
import { appendVisible, formatClock } from "./logTools.js";
import { OutputFind } from "./outputFind.js";

export const MAX_LINES = 10_000;
export const MAX_CHARS = 2_000_000;
const MAX_LINE_CHARS = 10_000;
const FRAME_LINE_BUDGET = 2_000;
const SKIP_AHEAD_BYTES = 512 * 1024;
const STICK_SLACK_PX = 24;

export class OutputView {
  constructor() {
    this.notice = h("div.output-trimmed", { hidden: true, role: "status" });
    this.body = h("div.output-lines");
    this.empty = h("div.output-empty", "No output yet.");
    this.scroller = h(
      "div.output",
      { tabindex: "0", role: "log", "aria-live": "off", "aria-label": "Run output" },
      this.empty,
      this.body,
    );
    this.jump = h("button.output-jump", { type: "button", hidden: true, onclick: () => this.scrollToBottom() }, "↓ Follow output");
    this.el = h("div.output-wrap", this.notice, this.scroller, this.jump);
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.logUrl = null;
    this.find = new OutputFind(this);
    this.reset();
  }

  reset() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.queue = [];
    this.queueAt = []; // when each queued chunk was read (one entry per pair)
    this.parsers = { stdout: new AnsiParser(), stderr: new AnsiParser() };
    this.lines = [];
    this.totalChars = 0;
    this.trimmedLines = 0;
    this.bytesSeen = 0;
    this.stick = true;
    this.body.textContent = "";
    this.empty.hidden = false;
    this.empty.textContent = "No output yet.";
    this.notice.hidden = true;
    this.jump.hidden = true;
    this.find.clear();
  }

  /** Shows or hides the gutter columns: "ln" (line numbers) or "times". */
  setGutter(what, on) {
    this.scroller.classList.toggle(`show-${what}`, on);
  }

  setEmptyText(text) {
    if (!this.empty.hidden) this.empty.textContent = text;
  }

  /** Link shown in the "earlier output trimmed" notice. */
  setLogUrl(url) {
    this.logUrl = url;
    if (!this.notice.hidden) this.renderNotice();
  }

  /** Queues output for the next frame; `at` (epoch ms) is when the server read it. */
  push(stream, data, at) {
    if (!data) return;
    this.queue.push(stream === "stderr" ? "stderr" : "stdout", data);
    this.queueAt.push(at ?? Date.now());
    this.bytesSeen += data.length;
    if (!this.raf) this.raf = requestAnimationFrame(() => this.flush());
  }

  /** True when nothing has been shown or queued. */
  isEmpty() {
    return !this.queue.length && this.totalChars === 0 && this.lines.length <= 1;
  }

  /** Processes everything queued now (normally once per animation frame). */
  flush() {
    this.raf = 0;
    const q = this.queue;
    if (!q.length) return;
    const times = this.queueAt;
    this.queue = [];
    this.queueAt = [];
    const start = this.skipAhead(q);
    const lines = this.lines;
    let firstDirty = lines.length ? lines.length - 1 : 0;
    if (!lines.length) lines.push(newLine(this.trimmedLines + 1));
    for (let i = start; i < q.length; i += 2) {
      const stream = q[i];
      const at = times[i / 2];
      this.parsers[stream].feed(q[i + 1], (tok) => {
        let cur = lines[lines.length - 1];
        if (!cur.at) cur.at = at;
        if (tok.t === "text") {
          if (cur.cr) this.resetLine(cur);
          addSegment(cur, tok.text, tok.style, stream);
          this.totalChars += tok.text.length;
          if (cur.chars > MAX_LINE_CHARS) this.totalChars -= truncateLine(cur);
        } else if (tok.t === "nl") {
          cur.cr = false;
          cur.segs = null; // closed lines never change again; only their element remains
          cur.closed = true;
          lines.push(newLine(this.trimmedLines + lines.length + 1));
        } else if (tok.t === "cr") {
          cur.cr = true;
        } else if (tok.t === "erase") {
          this.resetLine(cur);
        }
      });
    }
    // Trim from the front (one splice: shift() per line is quadratic on a firehose).
    let drop = 0;
    let chars = this.totalChars;
    while (lines.length - drop > MAX_LINES || (chars > MAX_CHARS && lines.length - drop > 1)) {
      chars -= lines[drop].chars;
      drop += 1;
    }
    // Never build more than FRAME_LINE_BUDGET new line elements in one frame: when more
    // arrived, everything older than the newest FRAME_LINE_BUDGET lines goes too, so what
    // stays is always one contiguous tail of the output.
    const rendered = lines.length && lines[lines.length - 1].el ? lines.length : lines.findIndex((l) => !l.el);
    const fresh = lines.length - Math.max(rendered, drop);
    if (fresh > FRAME_LINE_BUDGET) {
      drop = lines.length - FRAME_LINE_BUDGET;
      chars = this.totalChars;
      for (let i = 0; i < drop; i++) chars -= lines[i].chars;
    }
    if (drop) {
      const gone = lines.splice(0, drop);
      this.find.forget(gone[gone.length - 1].no);
      if (drop >= rendered) {
        this.body.textContent = ""; // every rendered line went: clear in one go
      } else {
        for (const old of gone) if (old.el) old.el.remove();
      }
      this.totalChars = chars;
      this.trimmedLines += drop;
      firstDirty = Math.max(0, firstDirty - drop);
      this.renderNotice();
    }
    const frag = document.createDocumentFragment();
    for (let i = firstDirty; i < lines.length; i++) {
      const line = lines[i];
      // The empty line after a trailing newline appears once something is written to it.
      if (!line.el && !line.closed && line.chars === 0 && !line.pending.length) continue;
      if (!line.el) {
        line.el = document.createElement("div");
        line.el.className = "line";
        line.el.dataset.ln = String(line.no);
        line.el.dataset.ts = formatClock(line.at);
        renderSegments(line.el, line.pending);
        frag.appendChild(line.el);
      } else if (line.rebuild) {
        line.el.textContent = "";
        renderSegments(line.el, line.segs || line.pending);
      } else if (line.pending.length) {
        renderSegments(line.el, line.pending);
      }
      if (line.err && !line.el.classList.contains("err")) line.el.classList.add("err");
      line.pending = [];
      line.rebuild = false;
    }
    this.body.appendChild(frag);
    if (lines[firstDirty]) this.find.update(lines, firstDirty);
    if (!this.empty.hidden && (this.totalChars > 0 || lines.length > 1)) {
      this.empty.hidden = true;
      this.empty.textContent = "";
    }
    if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    else this.jump.hidden = false;
  }

  /**
   * With a big backlog (a firehose), only the newest FRAME_LINE_BUDGET lines can survive
   * this frame. Older queued text then only runs through the ANSI parsers for their colour
   * state; the lines shown so far go too. Returns the queue index to parse from (the
   * queue entry there may have been cut to start after a newline).
   */
  skipAhead(q) {
    let total = 0;
    for (let i = 1; i < q.length; i += 2) total += q[i].length;
    if (total < SKIP_AHEAD_BYTES) return 0;
    let newlines = 0;
    for (let i = q.length - 1; i > 0; i -= 2) {
      const text = q[i];
      let at = text.length;
      while ((at = text.lastIndexOf("\n", at - 1)) !== -1) {
        newlines += 1;
        if (newlines > FRAME_LINE_BUDGET) {
          // Keep text[at+1..] and everything after entry i; skip the rest.
          const skipped = [];
          for (let j = 0; j < i - 1; j += 2) skipped.push(j);
          for (const j of skipped) this.parsers[q[j]].feed(q[j + 1], noop);
          const head = text.slice(0, at + 1);
          this.parsers[q[i - 1]].feed(head, noop);
          q[i] = text.slice(at + 1);
          // Whole lines before the kept text: the closed ones shown, then one per newline.
          let gone = Math.max(0, this.lines.length - 1);
          for (const j of skipped) gone += countNewlines(q[j + 1]);
          gone += countNewlines(head);
          this.lines = [];
          this.totalChars = 0;
          this.body.textContent = "";
          this.trimmedLines += gone;
          this.find.forget(Infinity);
          this.lines.push(newLine(this.trimmedLines + 1));
          this.renderNotice();
          return i - 1;
        }
        if (at === 0) break;
      }
    }
    return 0;
  }

  resetLine(line) {
    this.totalChars -= line.chars;
    line.chars = 0;
    line.segs = [];
    line.pending = [];
    line.rebuild = true;
    line.cr = false;
  }

  renderNotice() {
    this.notice.hidden = false;
    this.notice.textContent = "";
    this.notice.append(`Earlier output trimmed (${this.trimmedLines.toLocaleString()} lines); the page shows only the most recent output. `);
    if (this.logUrl) this.notice.append(h("a", { href: this.logUrl, target: "_blank", rel: "noopener" }, "Open the stored log"));
  }

  onScroll() {
    const s = this.scroller;
    const atBottom = s.scrollHeight - s.scrollTop - s.clientHeight <= STICK_SLACK_PX;
    this.stick = atBottom;
    this.jump.hidden = atBottom;
  }

  scrollToBottom() {
    this.stick = true;
    this.jump.hidden = true;
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Plain text currently shown (for copy buttons and tests). */
  text() {
    return this.lines.map((l) => (l.el ? l.el.textContent : "")).join("\n");
  }

  destroy() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.queue = [];
    this.queueAt = [];
    this.find.clear();
  }
}

function noop() {}

function countNewlines(text) {
  let n = 0;
  let at = -1;
  while ((at = text.indexOf("\n", at + 1)) !== -1) n += 1;
  return n;
}

function newLine(no) {
  // segs: every segment of the (open) line, kept so it can be rebuilt after truncation;
  // pending: segments not yet in the DOM; no: its number in the whole output; at: when
  // its first text reached the page (epoch ms).
  return { el: null, segs: [], pending: [], chars: 0, cr: false, rebuild: false, err: false, closed: false, no, at: 0 };
}

function addSegment(line, text, style, stream) {
  if (stream === "stderr") line.err = true;
  line.chars += text.length;
  const last = line.pending[line.pending.length - 1];
  if (last && last.style === style && last.stream === stream) {
    last.text += text;
    if (line.segs) {
      // pending and segs share segment objects, so the text is already updated there.
    }
  } else {
    const seg = { text, style, stream };
    line.pending.push(seg);
    if (line.segs) line.segs.push(seg);
  }
}

/** Drops the start of an overlong open line; returns how many characters went. */
function truncateLine(line) {
  const segs = line.segs || line.pending;
  let excess = line.chars - MAX_LINE_CHARS;
  const removed = excess;
  while (excess > 0 && segs.length) {
    const s = segs[0];
    if (s.text.length <= excess) {
      excess -= s.text.length;
      segs.shift();
    } else {
      s.text = s.text.slice(excess);
      excess = 0;
    }
  }
  if (segs.length && !segs[0].truncMark) {
    segs.unshift({ text: "… ", style: { key: "trunc", classes: "ansi-dim", css: {} }, stream: "stdout", truncMark: true });
  }
  line.chars = MAX_LINE_CHARS;
  line.pending = segs.slice();
  line.segs = segs;
  line.rebuild = true;
  return removed;
}

function renderSegments(el, segs) {
  for (const seg of segs) {
    const st = seg.style;
    let into = el;
    if (st.classes || st.css?.color || st.css?.backgroundColor || seg.stream !== "stdout") {
      into = document.createElement("span");
      let cls = st.classes || "";
      if (seg.stream === "stderr") cls = cls ? `${cls} stderr` : "stderr";
      if (cls) into.className = cls;
      if (st.css?.color) into.style.color = st.css.color;
      if (st.css?.backgroundColor) into.style.backgroundColor = st.css.backgroundColor;
      el.appendChild(into);
    }
    appendVisible(into, seg.text);
  }
}
