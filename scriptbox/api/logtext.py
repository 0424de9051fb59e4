"""A stored log as plain text: terminal escape sequences removed, also when one is split across chunks.

A pure rule (no I/O), used by `GET …/runs/:runId/log?plain=1`.
"""

from __future__ import annotations

import re

# CSI (colours, cursor moves), OSC (titles, hyperlinks; ended by BEL or ESC \),
# and the two-byte escapes. What remains is what a reader sees as text.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# An escape that has begun but not ended at the end of a piece of text.
_OPEN_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?\Z")


class EscapeStripper:
    """Feed pieces of text in order; each call returns them without escape sequences."""

    def __init__(self) -> None:
        self._carry = ""

    def feed(self, text: str) -> str:
        text = self._carry + text
        self._carry = ""
        open_at = _OPEN_ESCAPE.search(text)
        if open_at is not None:
            text, self._carry = text[:open_at.start()], text[open_at.start():]
        return _ESCAPE.sub("", text)

    def end(self) -> str:
        """What is left: an escape that never ended is dropped (it is not text)."""
        self._carry = ""
        return ""


def strip_escapes(text: str) -> str:
    """`text` without terminal escape sequences."""
    stripper = EscapeStripper()
    return stripper.feed(text) + stripper.end()
