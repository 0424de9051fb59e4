"""Secret masking of run output (SPEC §8.3): every occurrence becomes ***.

A run's output arrives in pieces (reads, chunks, console writes), so a secret
may be split across them. `StreamMasker` therefore holds back the end of what
it was given while that end could still be the start of a secret — at most
(longest secret − 1) characters, and only as many as actually match a
secret's beginning — and decides once more arrives or the stream ends
(`flush`). Nothing is ever released on a timer: a secret printed one
character per second stays hidden.

Matching uses one compiled regular expression (the secrets escaped, longest
first, as alternatives): re scans for the alternatives' first characters in C,
which measured as fast as an Aho-Corasick library for the 20 secrets the
benchmark uses (docs/params-secrets.md), without another dependency.
Values shorter than MIN_SECRET_CHARS are not masked: masking "ab" would garble
ordinary output and hide nothing.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_CHARS = 4


class SecretMasker:
    """The secrets of one run, compiled once; `stream()` masks one output stream."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS})
        self.sorted = values
        self.longest = max((len(s) for s in values), default=0)
        # Longest first: where two secrets start at one place, the longer one is masked whole.
        by_length = sorted(values, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(s) for s in by_length)) if values else None
        firsts = "".join(sorted({s[0] for s in values}))
        self.first = re.compile("[" + re.escape(firsts) + "]") if values else None

    def __bool__(self) -> bool:
        return self.pattern is not None

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def mask(self, text: str) -> str:
        """`text` masked as a whole (nothing follows it)."""
        return text if self.pattern is None else self.pattern.sub(MASK, text)

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
        pattern = self.masker.pattern
        if pattern is None:
            return text
        text = self.held + text if self.held else text
        hold = self._hold_from(text)
        parts: list[str] = []
        pos = 0
        # A match that starts before the held end is final: a longer secret
        # starting there would have made that place the held end instead.
        for found in pattern.finditer(text):
            if found.start() >= hold:
                break
            parts.append(text[pos:found.start()])
            parts.append(MASK)
            pos = found.end()
        cut = max(hold, pos)
        parts.append(text[pos:cut])
        self.held = text[cut:]
        return "".join(parts)

    def flush(self) -> str:
        """The held end, masked: the stream is over."""
        text, self.held = self.held, ""
        return self.masker.mask(text)
