// Masking of secret values in a browser run's output, in the page (SPEC §8.3): the page shows
// a browser run's output live from its worker, before the server (which masks the recorded
// result too) ever sees it. The same rules as scriptbox/masking.py: values of 4 characters or
// more become ***, longest first; the end of what arrived is held back while it could still be
// the start of a secret (at most longest − 1 characters), so a value split across console
// writes is masked too; nothing is released on a timer, the rest comes out at the end.

export const MASK = "***";
export const MIN_SECRET_CHARS = 4;

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class StreamMasker {
  /** secrets: the values to hide (shorter ones are ignored: they would garble ordinary output). */
  constructor(secrets) {
    this.secrets = [...new Set(secrets.filter((s) => typeof s === "string" && s.length >= MIN_SECRET_CHARS))]
      .sort((a, b) => b.length - a.length);
    this.longest = this.secrets.length ? this.secrets[0].length : 0;
    this.pattern = this.secrets.length ? new RegExp(this.secrets.map(escapeRegExp).join("|"), "g") : null;
    this.held = "";
  }

  /** Whether `text` is the beginning of a secret longer than it. */
  startsASecret(text) {
    return this.secrets.some((s) => s.length > text.length && s.startsWith(text));
  }

  holdFrom(text) {
    for (let i = Math.max(0, text.length - this.longest + 1); i < text.length; i += 1) {
      if (this.startsASecret(text.slice(i))) return i;
    }
    return text.length;
  }

  /** What of `text` (after what was held) can be shown now, masked. */
  feed(data) {
    if (!this.pattern) return data;
    const text = this.held + data;
    const hold = this.holdFrom(text);
    let out = "";
    let pos = 0;
    this.pattern.lastIndex = 0;
    // A match that starts before the held end is final: a longer secret starting there
    // would have made that place the held end instead.
    for (let m = this.pattern.exec(text); m && m.index < hold; m = this.pattern.exec(text)) {
      out += text.slice(pos, m.index) + MASK;
      pos = m.index + m[0].length;
    }
    const cut = Math.max(hold, pos);
    out += text.slice(pos, cut);
    this.held = text.slice(cut);
    return out;
  }

  /** The held end, masked: the stream is over. */
  flush() {
    const text = this.held;
    this.held = "";
    return this.pattern ? text.replace(this.pattern, MASK) : text;
  }
}
