"""Secret masking of run output (SPEC §8.3): every occurrence becomes ***.

A run's output arrives in pieces (reads, chunks, console writes), so a secret
may be split across them. `StreamMasker` therefore holds back the end of what
it was given while that end could still be the start of a secret — at most
(longest secret − 1) characters, and only as many as actually match a
secret's beginning — and decides once more arrives or the stream ends
(`flush`). Nothing is ever released on a timer: a secret printed one
character per second stays hidden.

Matching uses one Aho-Corasick automaton (ahocorasick_rs, a DFA over UTF-8
bytes, leftmost-longest: where two secrets start at one place the longer is
masked whole). A compiled `re` alternation of the escaped secrets was the
first choice, but measured at 2-23 MB/s for 20 secrets (re tries every
alternative wherever one could start); the automaton on `str` 100 MB/s (it
maps every offset back to characters); on the UTF-8 bytes 1.4 GB/s, with
offsets mapped back only when a secret is found (docs/params-secrets.md). Values shorter than MIN_SECRET_CHARS are not
masked: masking "ab" would garble ordinary output and hide nothing.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable

import ahocorasick_rs

MASK = "***"
MIN_SECRET_CHARS = 4


def _utf8(text: str) -> bytes:
    # The plain encoder is about 6x faster than with an error handler; output
    # text never holds lone surrogates (decoded with "replace"), other text may.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


class SecretMasker:
    """The secrets of one run, compiled once; `stream()` masks one output stream."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS})
        self.sorted = values
        self.longest = max((len(s) for s in values), default=0)
        self.automaton = ahocorasick_rs.BytesAhoCorasick(
            [_utf8(s) for s in values], matchkind=ahocorasick_rs.MatchKind.LeftmostLongest,
            implementation=ahocorasick_rs.Implementation.DFA) if values else None
        firsts = "".join(sorted({s[0] for s in values}))
        self.first = re.compile("[" + re.escape(firsts) + "]") if values else None

    def __bool__(self) -> bool:
        return self.automaton is not None

    def matches(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every secret in `text`, left to right, not overlapping."""
        if self.automaton is None:
            return []
        data = _utf8(text)
        found = self.automaton.find_matches_as_indexes(data)
        if not found or text.isascii():
            return [(start, end) for _, start, end in found]
        # Byte offsets to character offsets (a UTF-8 match always lies on character boundaries).
        return [(len(data[:start].decode("utf-8", "surrogatepass")), len(data[:end].decode("utf-8", "surrogatepass")))
                for _, start, end in found]

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def mask(self, text: str) -> str:
        """`text` masked as a whole (nothing follows it)."""
        parts: list[str] = []
        pos = 0
        for start, end in self.matches(text):
            parts += (text[pos:start], MASK)
            pos = end
        return "".join(parts) + text[pos:] if parts else text

    def starts_a_secret(self, text: str) -> bool:
        """Whether `text` is the beginning of a secret longer than `text` (so more could complete it)."""
        i = bisect_left(self.sorted, text)
        while i < len(self.sorted) and self.sorted[i].startswith(text):
            if len(self.sorted[i]) > len(text):
                return True
            i += 1
        return False


class StreamMasker:
    """Masks one stream of text given piece by piece."""

    def __init__(self, masker: SecretMasker) -> None:
        self.masker = masker
        self.held = ""

    def _hold_from(self, text: str) -> int:
        """Where the longest end of `text` that could still grow into a secret begins (len: none)."""
        assert self.masker.first is not None
        start = max(0, len(text) - self.masker.longest + 1)
        for found in self.masker.first.finditer(text, start):
            if self.masker.starts_a_secret(text[found.start():]):
                return found.start()
        return len(text)

    def feed(self, text: str) -> str:
        """What of `text` (after what was held) can be shown now, masked."""
        if not self.masker:
            return text
        text = self.held + text if self.held else text
        hold = self._hold_from(text)
        parts: list[str] = []
        pos = 0
        # A match that starts before the held end is final: a longer secret
        # starting there would have made that place the held end instead.
        for start, end in self.masker.matches(text):
            if start >= hold:
                break
            parts += (text[pos:start], MASK)
            pos = end
        cut = max(hold, pos)
        parts.append(text[pos:cut])
        self.held = text[cut:]
        return "".join(parts)

    def flush(self) -> str:
        """The held end, masked: the stream is over."""
        text, self.held = self.held, ""
        return self.masker.mask(text)
