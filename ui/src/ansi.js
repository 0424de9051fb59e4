// Incremental ANSI escape parser for run output.
//
// feed(text) turns decoded output into tokens: {t: "text", text, style} | {t: "nl"} |
// {t: "cr"} | {t: "erase"}. SGR colour state persists across chunks, and an escape
// sequence split across two chunks is carried over, so chunk boundaries never show.
// Only SGR (colours/attributes) is interpreted; other CSI/OSC sequences are dropped.

// A complete escape sequence, or the line controls we care about.
// CSI: ESC [ params intermediates final; OSC: ESC ] ... (BEL | ESC \); two-char escapes.
const TOKEN_RE = /\x1b\[([0-?]*)([ -/]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()*+][ -~]|\x1b[@-Z\\-_]|\r\n|\n|\r|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;
// An escape sequence that may still be completed by the next chunk.
const PARTIAL_RE = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[()*+])?$/;

export const PLAIN = Object.freeze({ key: "" });

export class AnsiParser {
  constructor() {
    this.carry = "";
    this.sgr = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false };
    this.style = PLAIN;
  }

  /** Parses `text`; calls emit(token) for each token in order. */
  feed(text, emit) {
    if (this.carry) {
      text = this.carry + text;
      this.carry = "";
    }
    // Hold back a trailing, possibly incomplete escape sequence (bounded, so a stray ESC
    // cannot swallow output forever).
    const esc = text.lastIndexOf("\x1b");
    if (esc !== -1 && text.length - esc < 256) {
      const m = PARTIAL_RE.exec(text.slice(esc));
      if (m && m.index === 0) {
        this.carry = text.slice(esc);
        text = text.slice(0, esc);
      }
    }
    TOKEN_RE.lastIndex = 0;
    let last = 0;
    let m;
    while ((m = TOKEN_RE.exec(text)) !== null) {
      if (m.index > last) emit({ t: "text", text: text.slice(last, m.index), style: this.style });
      last = TOKEN_RE.lastIndex;
      const tok = m[0];
      if (tok === "\n" || tok === "\r\n") emit({ t: "nl" });
      else if (tok === "\r") emit({ t: "cr" });
      else if (m[3] === "m" && !m[2]) this.applySgr(m[1]);
      else if (m[3] === "K" && !m[2] && (m[1] === "2" || m[1] === "1")) emit({ t: "erase" });
      // Everything else (cursor movement, OSC titles, BEL, other controls) is dropped.
    }
    if (last < text.length) emit({ t: "text", text: text.slice(last), style: this.style });
  }

  applySgr(params) {
    const s = this.sgr;
    const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) {
        Object.assign(s, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false });
      } else if (c === 1) s.bold = true;
      else if (c === 2) s.dim = true;
      else if (c === 3) s.italic = true;
      else if (c === 4) s.underline = true;
      else if (c === 7) s.inverse = true;
      else if (c === 9) s.strike = true;
      else if (c === 21 || c === 22) { s.bold = false; s.dim = false; }
      else if (c === 23) s.italic = false;
      else if (c === 24) s.underline = false;
      else if (c === 27) s.inverse = false;
      else if (c === 29) s.strike = false;
      else if (c >= 30 && c <= 37) s.fg = c - 30;
      else if (c === 39) s.fg = null;
      else if (c >= 40 && c <= 47) s.bg = c - 40;
      else if (c === 49) s.bg = null;
      else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
      else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
      else if (c === 38 || c === 48) {
        let color = null;
        if (codes[i + 1] === 5 && i + 2 < codes.length) {
          color = xterm256(codes[i + 2]);
          i += 2;
        } else if (codes[i + 1] === 2 && i + 4 < codes.length) {
          color = rgb(codes[i + 2], codes[i + 3], codes[i + 4]);
          i += 4;
        } else {
          break; // malformed extended colour: ignore the rest of this sequence
        }
        if (c === 38) s.fg = color;
        else s.bg = color;
      }
    }
    this.style = styleOf(s);
  }
}

const styleCache = new Map();

/** An immutable style object: {key, classes: string, css: {color, backgroundColor}} */
function styleOf(s) {
  const key = `${s.fg}|${s.bg}|${+s.bold}${+s.dim}${+s.italic}${+s.underline}${+s.inverse}${+s.strike}`;
  if (key === "null|null|000000") return PLAIN;
  let st = styleCache.get(key);
  if (st) return st;
  let fg = s.fg;
  let bg = s.bg;
  const classes = [];
  const css = {};
  if (s.inverse) {
    [fg, bg] = [bg, fg];
    // Inverse with default colours swaps the panel's own colours.
    if (fg === null) classes.push("ansi-inv-fg");
    if (bg === null) classes.push("ansi-inv-bg");
  }
  if (typeof fg === "number") {
    // Bold + normal colour shows the bright variant, as most terminals do.
    classes.push(`ansi-fg${s.bold && fg < 8 ? fg + 8 : fg}`);
  } else if (typeof fg === "string") css.color = fg;
  if (typeof bg === "number") classes.push(`ansi-bg${bg}`);
  else if (typeof bg === "string") css.backgroundColor = bg;
  if (s.bold) classes.push("ansi-bold");
  if (s.dim) classes.push("ansi-dim");
  if (s.italic) classes.push("ansi-italic");
  if (s.underline) classes.push("ansi-underline");
  if (s.strike) classes.push("ansi-strike");
  st = Object.freeze({ key, classes: classes.join(" "), css });
  if (styleCache.size < 5000) styleCache.set(key, st);
  return st;
}

function clamp(n) {
  n = Number(n);
  return Number.isFinite(n) ? Math.max(0, Math.min(255, Math.round(n))) : 0;
}

function rgb(r, g, b) {
  return `rgb(${clamp(r)}, ${clamp(g)}, ${clamp(b)})`;
}

function xterm256(n) {
  n = clamp(n);
  if (n < 16) return n; // the themed 16-colour palette
  if (n < 232) {
    n -= 16;
    const steps = [0, 95, 135, 175, 215, 255];
    return rgb(steps[Math.floor(n / 36)], steps[Math.floor(n / 6) % 6], steps[n % 6]);
  }
  const v = 8 + (n - 232) * 10;
  return rgb(v, v, v);
}
