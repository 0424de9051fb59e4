// Search in the live output panel (output.js) while lines keep arriving.
//
// Matches are drawn with the CSS Custom Highlight API: Ranges over the text nodes the
// panel already has, so a search never rebuilds a line (closed lines keep only their
// element) and a new query over 10,000 lines costs one pass over their text. Each frame
// the panel reports the lines it touched; only those are searched again, so a firehose
// with an active query costs at most the frame's new lines. Browsers without the API
// still get the count, next/previous and the outlined current line.
import { matchRanges } from "./logTools.js";

const HIGHLIGHT = "output-find";

export class OutputFind {
  constructor(view) {
    this.view = view;
    this.onChange = null; // (current, lines, total) after every change of the matches
    this.highlight = typeof Highlight === "function" && globalThis.CSS?.highlights ? new Highlight() : null;
    this.query = "";
    this.clear();
  }

  /** Forgets the matches (the panel was emptied); the query stays for what comes next. */
  clear() {
    this.matches = []; // lines with at least one match, in output order
    this.total = 0;
    this.current = -1;
    this.highlight?.clear();
    this.report();
  }

  /** A new query: searches every line shown and goes to the first match. */
  setQuery(query) {
    this.markCurrent(false);
    this.query = query;
    this.matches = [];
    this.total = 0;
    this.highlight?.clear();
    if (query) {
      if (this.highlight) CSS.highlights.set(HIGHLIGHT, this.highlight);
      for (const line of this.view.lines) this.searchLine(line);
    }
    this.current = this.matches.length ? 0 : -1;
    this.reveal();
  }

  step(delta) {
    if (!this.matches.length) return;
    this.markCurrent(false);
    this.current = (this.current + delta + this.matches.length) % this.matches.length;
    this.reveal();
  }

  /** Lines from `from` (an index into `lines`) on were added or changed this frame. */
  update(lines, from) {
    if (!this.query) return;
    const first = lines[from].no;
    while (this.matches.length && this.matches[this.matches.length - 1].no >= first) this.drop(this.matches.pop());
    if (this.current >= this.matches.length) this.current = this.matches.length - 1;
    for (let i = from; i < lines.length; i++) this.searchLine(lines[i]);
    if (this.current < 0 && this.matches.length) {
      this.current = 0;
      this.reveal();
    } else {
      this.markCurrent(true);
      this.report();
    }
  }

  /** Lines up to number `lastNo` left the panel (trimmed from the front). */
  forget(lastNo) {
    let n = 0;
    while (n < this.matches.length && this.matches[n].no <= lastNo) this.drop(this.matches[n++]);
    if (!n) return;
    this.matches.splice(0, n);
    this.current = this.matches.length ? Math.max(0, this.current - n) : -1;
    this.report();
  }

  searchLine(line) {
    if (!line.el || !this.query) return;
    const found = matchRanges(line.el.textContent, this.query);
    if (!found.length) return;
    line.hits = found.length;
    line.ranges = this.highlight ? textRanges(line.el, found) : [];
    for (const r of line.ranges) this.highlight.add(r);
    this.total += found.length;
    this.matches.push(line);
  }

  drop(line) {
    this.total -= line.hits || 0;
    for (const r of line.ranges || []) this.highlight?.delete(r);
    line.el?.classList.remove("current-match");
    line.hits = 0;
    line.ranges = null;
  }

  markCurrent(on) {
    const line = this.matches[this.current];
    line?.el?.classList.toggle("current-match", on);
  }

  /** Scrolls to the current match (which stops following the output) and reports. */
  reveal() {
    this.markCurrent(true);
    const line = this.matches[this.current];
    if (line?.el) {
      this.view.stick = false;
      line.el.scrollIntoView({ block: "center" });
    }
    this.report();
  }

  report() {
    this.onChange?.(this.current, this.matches.length, this.total);
  }
}

/** Ranges over the text nodes of `el` for each [start, end) of its textContent. */
function textRanges(el, found) {
  const out = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let node = walker.nextNode();
  let base = 0; // textContent offset where `node` starts
  for (const [s, e] of found) {
    while (node && base + node.data.length <= s) {
      base += node.data.length;
      node = walker.nextNode();
    }
    if (!node) break;
    const range = document.createRange();
    range.setStart(node, s - base);
    let endNode = node;
    let endBase = base;
    while (endNode && endBase + endNode.data.length < e) {
      endBase += endNode.data.length;
      endNode = walker.nextNode();
    }
    if (!endNode) break;
    range.setEnd(endNode, e - endBase);
    out.push(range);
    node = endNode;
    base = endBase;
  }
  return out;
}
