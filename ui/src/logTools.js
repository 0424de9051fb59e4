// What the live output panel (output.js, runPanel.js) and the finished-run log viewer
// (logViewer.js) share: the find bar (search box, match count, next/previous), the
// Wrap / Timestamps / Line numbers switches, case-insensitive match ranges, the clock a
// line's time is shown in, and writing output text with invisible characters as markers.
import { h } from "./dom.js";
import { eachPiece, markerText, markerTitle } from "./invisible.js";

const SEARCH_DEBOUNCE_MS = 150;

/**
 * A search box with a live count and ↑/↓ buttons. Enter goes to the next match,
 * Shift+Enter to the previous one. onQuery(query) runs once typing pauses;
 * onStep(+1 | -1) when the user moves between matches.
 */
export class FindBar {
  constructor({ label, onQuery, onStep }) {
    this.onQuery = onQuery;
    this.input = h("input.log-search", { type: "search", placeholder: label, "aria-label": label, oninput: () => this.schedule(), onkeydown: (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        clearTimeout(this.timer);
        if (this.input.value !== this.query) this.fire();
        else onStep(e.shiftKey ? -1 : 1);
      } else if (e.key === "Escape" && this.input.value) {
        e.preventDefault();
        this.input.value = "";
        this.fire();
      }
    } });
    this.query = "";
    this.count = h("span.log-count.muted", { role: "status", "aria-live": "polite" });
    this.prevBtn = h("button.btn.small", { type: "button", "aria-label": "Previous match", title: "Previous match (Shift+Enter)", onclick: () => onStep(-1), disabled: true }, "↑");
    this.nextBtn = h("button.btn.small", { type: "button", "aria-label": "Next match", title: "Next match (Enter)", onclick: () => onStep(1), disabled: true }, "↓");
    this.el = h("div.log-find", this.input, this.count, this.prevBtn, this.nextBtn);
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), SEARCH_DEBOUNCE_MS);
  }

  fire() {
    this.query = this.input.value;
    this.onQuery(this.query);
  }

  /** Shows `current` (0-based, -1 for none) of `lines` matching lines and `total` matches. */
  show(current, lines, total) {
    if (!this.query) this.count.textContent = "";
    else if (!lines) this.count.textContent = "No matches";
    else this.count.textContent = `${current + 1} of ${lines} lines (${total} matches)`;
    this.prevBtn.disabled = this.nextBtn.disabled = lines === 0;
  }

  destroy() {
    clearTimeout(this.timer);
  }
}

/** A labelled checkbox switch; onChange(checked). Returns {input, el}. */
export function toggle(label, checked, onChange) {
  const input = h("input", { type: "checkbox", id: `${label.toLowerCase().replace(/\W+/g, "-")}-${Math.random().toString(36).slice(2)}`, checked, onchange: () => onChange(input.checked) });
  return { input, el: h("label.log-toggle", { for: input.id }, input, ` ${label}`) };
}

/** [start, end) of each case-insensitive occurrence of `query` in `text`. */
export function matchRanges(text, query) {
  const out = [];
  if (!query) return out;
  const hay = text.toLowerCase();
  const needle = query.toLowerCase();
  let at = hay.indexOf(needle);
  while (at !== -1) {
    out.push([at, at + needle.length]);
    at = hay.indexOf(needle, at + needle.length);
  }
  return out;
}

/** Appends `text` as text nodes, with bidi/invisible characters as marker spans. */
export function appendVisible(el, text) {
  if (!text) return;
  eachPiece(
    text,
    (piece) => el.appendChild(document.createTextNode(piece)),
    (ch) => {
      const mark = document.createElement("span");
      mark.className = "invisible-char";
      mark.title = markerTitle(ch);
      mark.textContent = markerText(ch);
      el.appendChild(mark);
    },
  );
}

/** A time (ISO string or epoch ms) as the local clock with milliseconds: 14:03:07.250. */
export function formatClock(time) {
  if (time === null || time === undefined || time === "") return "";
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
