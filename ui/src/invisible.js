// Characters that change how the text around them is displayed, or that cannot be seen
// at all: bidi overrides, embeddings, isolates and marks (the "Trojan Source" family,
// e.g. `invoice_<U+202E>fdp.exe` showing as `invoice_exe.pdf`), C1 controls, zero-width
// and other format characters, and Unicode tag characters. Output shows each one as a
// visible marker (⟨U+202E⟩), as code review tools do, and never applies it.
//
// Left out on purpose: ZWNJ/ZWJ (U+200C/U+200D; needed by emoji sequences and Indic
// scripts), variation selectors (emoji presentation), tab/newline/CR (layout) and the
// C0 controls, which the ANSI parser already drops.
export const INVISIBLE = /[\u0080-\u009F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B\u200E\u200F\u2028-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB]|\uDB40[\uDC00-\uDC7F]/g;

const NAMES = {
  0x00ad: "SOFT HYPHEN",
  0x061c: "ARABIC LETTER MARK",
  0x200b: "ZERO WIDTH SPACE",
  0x200e: "LEFT-TO-RIGHT MARK",
  0x200f: "RIGHT-TO-LEFT MARK",
  0x2028: "LINE SEPARATOR",
  0x2029: "PARAGRAPH SEPARATOR",
  0x202a: "LEFT-TO-RIGHT EMBEDDING",
  0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING",
  0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2060: "WORD JOINER",
  0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE",
  0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE",
  0xfeff: "ZERO WIDTH NO-BREAK SPACE",
};

/** "U+202E" for one character (a surrogate pair counts as one). */
export function codePoint(ch) {
  return `U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The marker text shown instead of `ch`. */
export function markerText(ch) {
  return `⟨${codePoint(ch)}⟩`;
}

/** A tooltip naming the character. */
export function markerTitle(ch) {
  const cp = ch.codePointAt(0);
  const name = NAMES[cp] || (cp >= 0x80 && cp <= 0x9f ? "C1 CONTROL" : cp >= 0xe0000 ? "TAG CHARACTER" : "INVISIBLE FORMAT CHARACTER");
  return `${codePoint(ch)} ${name} (shown, not applied)`;
}

/** Calls text(piece) and marker(ch) in order for `text`; fast path when nothing matches. */
export function eachPiece(text, onText, onMarker) {
  INVISIBLE.lastIndex = 0;
  let last = 0;
  let m;
  while ((m = INVISIBLE.exec(text)) !== null) {
    if (m.index > last) onText(text.slice(last, m.index));
    onMarker(m[0]);
    last = INVISIBLE.lastIndex;
  }
  if (last < text.length) onText(last ? text.slice(last) : text);
}

/** `text` with every invisible character replaced by its marker (for plain text fields). */
export function visibleText(text) {
  return String(text).replace(INVISIBLE, markerText);
}
