"""Notifications of run ends to Apprise URLs (SPEC §8.5; docs/notifications.md).

    message      what a message says (pure)
    apprise_url  Apprise behind three blocking functions: parse, mask, send
    notifier     background delivery: queues, retries, timeouts, records
"""

from __future__ import annotations

from .notifier import Notifier, NotifierOptions

__all__ = ["Notifier", "NotifierOptions"]
