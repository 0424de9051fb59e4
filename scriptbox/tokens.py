"""API tokens: the secret, its hash, what a token may do, and revocation of open streams.

* A token is ``sbx_`` + 32 random bytes from ``secrets`` (URL-safe base64,
  43 characters, 256 bits). It is shown once, at creation; the database keeps
  only its SHA-256. A slow password hash (Argon2) protects *guessable* secrets;
  a 256-bit random token cannot be guessed or brute-forced from its digest, so
  a fast hash is enough and lets every request look its token up through a
  unique index instead of paying ~50 ms.
* Lookup by digest leaks nothing useful about the secret through timing (an
  attacker controls the secret, not its digest); the found digest is compared
  again with ``hmac.compare_digest``.
* Scope rules are plain functions (``run_target``, ``scope_allows``), called
  by the request guard in ``api/tokens.py``.
* Revocation is immediate: every request looks the token up again, and open
  SSE streams of the token are ended by ``TokenAuthority.revoke`` in this
  process and by a periodic re-check for revocations made by another process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import gevent
import gevent.queue

from .store import utcnow
from .store.tokens import TOUCH_EVERY, TokenStore

Block = TypeVar("Block")  # what a guarded stream yields (bytes, or a Scatter of a run's output)

TOKEN_PREFIX = "sbx_"
TOKEN_BYTES = 32
SCOPES = ("admin", "run")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
# How often an open stream re-reads its token from the database, to notice a
# revocation made through another Scriptbox process sharing the database.
STREAM_RECHECK_S = 5.0
MAX_TOUCHED = 10_000


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when the header is another scheme."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


@dataclass(frozen=True)
class Token:
    """A valid token, as the request guard sees it."""

    id: str  # hex
    name: str
    scope: str
    script_ids: frozenset[str]  # empty: every script (run scope)
    expires_at: datetime | None

    @property
    def actor(self) -> str:
        return f"token:{self.name}"

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class RunTarget:
    """What a run-scoped request touches: a script (by id or code), a run, or the run list."""

    kind: str  # "script" | "code" | "run" | "runs"
    ref: str


_RUN_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/api/admin/scripts/([0-9a-fA-F]{24})/run"), "script"),
    ("POST", re.compile(r"/api/admin/scripts/by-code/([^/]+)/run"), "code"),
    ("GET", re.compile(r"/api/admin/scripts/runs/([0-9a-fA-F]{24})(?:/stream|/log)?"), "run"),
    ("GET", re.compile(r"/api/admin/scripts/runs()"), "runs"),
)


def run_target(method: str, path: str) -> RunTarget | None:
    """The run-scope operation a request is, or None when a run token may not make it at all.

    A run token may start runs and read runs, their streams and logs; nothing
    else (no definitions, no cancel, no tokens, no audit log).
    """
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for route_method, pattern, kind in _RUN_ROUTES:
        match = pattern.fullmatch(path)
        if match and method == route_method:
            return RunTarget(kind, match.group(1))
    return None


def scope_allows(token: Token, script_id: str | None) -> bool:
    """Whether `token` may act on the script `script_id` (None: a list over every script)."""
    if token.scope == "admin":
        return True
    if not token.script_ids:
        return True
    return script_id is not None and script_id.lower() in token.script_ids


def parse_expiry(value: Any, now: datetime) -> tuple[datetime | None, str | None]:
    """(expiry as naive UTC, None) or (None, why it is refused). None/absent means never."""
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, "must be an ISO-8601 time or null"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None, "must be an ISO-8601 time or null"
    if parsed.tzinfo is None:
        return None, "must carry a timezone (e.g. a trailing Z)"
    parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    parsed = parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    if parsed <= now.replace(tzinfo=None):
        return None, "must be in the future"
    return parsed, None


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class TokenAuthority:
    """Finds the token of a request, and ends the open streams of a revoked one."""

    def __init__(self, store: TokenStore, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock
        self._streams: dict[str, set[gevent.queue.Queue[Any]]] = {}
        # When this process last wrote each token's lastUsedAt: skips the
        # database write (and its round trip) on the other requests of a minute.
        self._touched: dict[str, datetime] = {}

    @property
    def store(self) -> TokenStore:
        return self._store

    def now(self) -> datetime:
        return _naive(self._clock())

    def authenticate(self, secret: str) -> Token | None:
        """The valid token with this secret; None when unknown, revoked or expired."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        digest = token_digest(secret)
        doc = self._store.by_hash(digest)
        if doc is None or not hmac.compare_digest(str(doc.get("hash", "")), digest):
            return None
        token = Token(str(doc["_id"]), str(doc["name"]), str(doc["scope"]),
                      frozenset(str(s).lower() for s in doc.get("scriptIds", [])), doc.get("expiresAt"))
        now = self.now()
        if token.expired(now):
            return None
        last = self._touched.get(token.id)
        if last is None or now - last >= TOUCH_EVERY:
            if len(self._touched) > MAX_TOUCHED:
                self._touched.clear()
            self._touched[token.id] = now
            self._store.touch(token.id, now)
        return token

    def still_valid(self, token: Token) -> bool:
        return not token.expired(self.now()) and self._store.exists(token.id)

    def revoke(self, token_id: str) -> dict[str, Any]:
        """Delete the token and end its open streams here; raises NotFound."""
        doc = self._store.delete(token_id)
        for queue in list(self._streams.get(str(doc["_id"]), ())):
            queue.put(_REVOKED)
        return doc

    def guard_stream(self, token: Token, inner: Iterator[Block], closing: Callable[[], Block]) -> Iterator[Block]:
        """Yield `inner`'s blocks while `token` stays valid; when it is revoked or expires, yield
        `closing()` and stop (closing `inner`, so the stream unsubscribes from its run)."""
        queue: gevent.queue.Queue[Any] = gevent.queue.Queue(maxsize=4)
        self._streams.setdefault(token.id, set()).add(queue)

        def pump() -> None:
            try:
                for block in inner:
                    queue.put(block)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                queue.put(exc)
            queue.put(_DONE)

        pumper = gevent.spawn(pump)
        try:
            recheck_at = 0.0
            while True:
                timeout = STREAM_RECHECK_S
                if token.expires_at is not None:
                    timeout = max(0.0, min(timeout, (token.expires_at - self.now()).total_seconds()))
                try:
                    item = queue.get(timeout=timeout)
                except gevent.queue.Empty:
                    item = None
                loop_now = gevent.get_hub().loop.now()
                if item is _REVOKED or (item is None and loop_now >= recheck_at and not self.still_valid(token)):
                    yield closing()
                    return
                if item is None:
                    recheck_at = loop_now + STREAM_RECHECK_S
                    continue
                if item is _DONE:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            streams = self._streams.get(token.id)
            if streams is not None:
                streams.discard(queue)
                if not streams:
                    self._streams.pop(token.id, None)
            pumper.kill(block=False)


_REVOKED = object()
_DONE = object()
