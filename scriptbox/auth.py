"""Who may talk to Scriptbox: admin credentials, sessions and request guards.

* The admin password is never stored in clear: either it is configured
  (SCRIPTBOX_ADMIN_PASSWORD) and hashed in memory at start, or the first start
  generates one, prints it once and keeps only its Argon2 hash in the data dir.
  Argon2 (argon2-cffi) is the maintained, memory-hard choice; its cost also
  slows down guessing.
* Basic auth checks a successful user+password pair once with Argon2 (in a
  thread pool, off the gevent loop), then remembers an HMAC of the pair so the
  many requests of a live page do not each pay ~50 ms. Every comparison is
  constant-time.
* LoginThrottle limits guessing per client and globally (lockouts, no reset by
  a success).
* Desktop sessions: the desktop launcher hands the server a one-time token on
  stdin; a loopback client exchanges it for an HttpOnly cookie. Cookies are
  honoured only from loopback peers, so remote access still needs Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

SESSION_COOKIE = "scriptbox_session"
PASSWORD_HASH_FILE = "admin-password.hash"


@dataclass(frozen=True)
class AdminPassword:
    """The outcome of preparing the admin password at start."""

    password_hash: str
    generated: str | None  # the new password to print once, if one was generated


def prepare_admin_password(configured: str | None, data_dir: Path) -> AdminPassword:
    """Hash the configured password, or load/generate the stored one.

    A generated password is 24 random URL-safe characters (~143 bits). Only its
    salted Argon2 hash is written, to ``<data-dir>/admin-password.hash`` (0600).
    """
    hasher = PasswordHasher()
    if configured is not None:
        return AdminPassword(hasher.hash(configured), None)
    path = data_dir / PASSWORD_HASH_FILE
    if path.exists():
        return AdminPassword(path.read_text(encoding="ascii").strip(), None)
    password = secrets.token_urlsafe(18)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(hasher.hash(password) + "\n")
    os.replace(tmp, path)
    return AdminPassword(path.read_text(encoding="ascii").strip(), password)


BlockingRunner = Callable[[Callable[[], bool]], bool]


def _run_here(func: Callable[[], bool]) -> bool:
    return func()


class CredentialChecker:
    """Constant-time check of the admin user name and password.

    A pair that passed Argon2 is remembered as an HMAC of user *and* password
    together, so only the exact right pair answers fast: a right password with
    a wrong user name pays Argon2 like any wrong guess and tells nothing
    (issue 20, item 3). The remembered HMACs are compared in constant time,
    all of them every time.

    `run_blocking` runs the Argon2 verification; the server passes a bounded
    thread pool so ~50-100 ms of hashing never blocks the gevent loop.
    """

    MAX_REMEMBERED = 8

    def __init__(self, user: str, password_hash: str, run_blocking: BlockingRunner = _run_here) -> None:
        self._user = user.encode("utf-8")
        self._hash = password_hash
        self._hasher = PasswordHasher()
        self._key = secrets.token_bytes(32)
        self._verified: list[bytes] = []  # HMACs of user+password pairs that verified
        self._run_blocking = run_blocking

    @property
    def user(self) -> str:
        return self._user.decode("utf-8")

    def _mac(self, user: str, password: str) -> bytes:
        raw_user = user.encode("utf-8", "surrogatepass")
        # Length-prefixed so ("ab", "c") and ("a", "bc") differ.
        message = len(raw_user).to_bytes(4, "big") + raw_user + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def is_remembered(self, user: str, password: str) -> bool:
        """True when this exact pair verified before (fast path; no Argon2)."""
        mac = self._mac(user, password)
        found = False
        for known in self._verified:
            found |= hmac.compare_digest(mac, known)
        return found

    def check(self, user: str, password: str) -> bool:
        """True when both user and password are right. Blocks (in `run_blocking`) for Argon2 unless remembered."""
        if self.is_remembered(user, password):
            return True
        user_ok = hmac.compare_digest(user.encode("utf-8", "surrogatepass"), self._user)
        secret = password.encode("utf-8", "surrogatepass")

        def verify() -> bool:
            try:
                return bool(self._hasher.verify(self._hash, secret))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        password_ok = self._run_blocking(verify)
        if not (password_ok and user_ok):
            return False
        mac = self._mac(user, password)
        if not self.is_remembered(user, password):
            self._verified = [*self._verified, mac][-self.MAX_REMEMBERED:]
        return True


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) of a Basic Authorization header, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


@dataclass
class _Budget:
    """Failures charged to one client (or to everyone, for the global budget)."""

    leak_s: float  # one failure is forgiven per leak_s seconds
    failures: float = 0.0
    updated: float = 0.0
    pending: int = 0  # checks running now, charged in advance
    last_failure: float = 0.0
    last_logged: float = float("-inf")
    unlogged: int = 0

    def decay(self, now: float) -> None:
        if self.failures:
            self.failures = max(self.failures - (now - self.updated) / self.leak_s, 0.0)
        self.updated = now


class LoginThrottle:
    """Limits password guessing, including many guesses in parallel.

    * Per client (see guards.client_address): FREE_FAILURES failures, then the
      client is locked out for 1 s, 2 s, 4 s ... up to MAX_LOCK_S after its last
      failure; while locked out its attempts are refused at once (429) without
      checking the password. Checks in flight count as failures in advance, so
      100 parallel requests cannot all slip through before the first fails.
    * Globally, against guessing from many addresses: GLOBAL_FREE_FAILURES,
      then the same lockout for every unknown password; and at most
      MAX_PENDING checks waiting for the Argon2 pool at once.
    * Nothing is reset by a success (behind a shared proxy an attacker's count
      would otherwise be cleared by the admin's login). Failures leak away
      instead: one per CLIENT_LEAK_S per client, one per GLOBAL_LEAK_S overall,
      so a patient attacker gets about one guess per 5 minutes per address
      and about one per second in total. A signed-in admin is not affected: an
      exact user+password pair that verified before skips the throttle.

    Pure bookkeeping on a monotonic clock (no I/O), used from one gevent loop.
    """

    FREE_FAILURES = 5
    GLOBAL_FREE_FAILURES = 100
    BASE_LOCK_S = 1.0
    MAX_LOCK_S = 300.0
    CLIENT_LEAK_S = 300.0
    GLOBAL_LEAK_S = 1.0
    MAX_CLIENTS = 10_000
    MAX_PENDING = 16
    LOG_EVERY_S = 60.0
    # A refused attempt is answered after TARPIT_MIN_S..TARPIT_MAX_S (its wait,
    # clamped): a sleeping greenlet costs nothing, and a guesser then gets one
    # answer per 5-10 s per connection instead of as many as the server can
    # produce (each one still costs parsing and routing, which under load
    # delays everyone else). Bounded, so held connections cannot fill the cap.
    TARPIT_MIN_S = 5.0
    TARPIT_MAX_S = 10.0
    MAX_TARPITTED = 256

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._clients: OrderedDict[str, _Budget] = OrderedDict()
        self._global = _Budget(self.GLOBAL_LEAK_S)
        self._tarpitted = 0

    def tarpit(self, wait: float) -> float:
        """Seconds to hold a refused attempt before answering (0 when too many are held); call tarpit_done after."""
        if self._tarpitted >= self.MAX_TARPITTED:
            return 0.0
        self._tarpitted += 1
        return min(max(wait, self.TARPIT_MIN_S), self.TARPIT_MAX_S)

    def tarpit_done(self) -> None:
        self._tarpitted = max(self._tarpitted - 1, 0)

    def _client(self, client: str, now: float) -> _Budget:
        budget = self._clients.get(client)
        if budget is None:
            budget = self._clients[client] = _Budget(self.CLIENT_LEAK_S, updated=now)
            while len(self._clients) > self.MAX_CLIENTS:
                oldest, old = next(iter(self._clients.items()))
                if old.pending:
                    break  # never forget a client whose check is running
                del self._clients[oldest]
        self._clients.move_to_end(client)
        budget.decay(now)
        self._global.decay(now)
        return budget

    def _wait(self, budget: _Budget, free: int, now: float) -> float:
        over = math.ceil(budget.failures) + budget.pending - free
        if over < 0:
            return 0.0
        lock = float(min(self.BASE_LOCK_S * 2 ** min(over, 30), self.MAX_LOCK_S))
        # Past the free failures: one attempt at a time, each after the lock.
        return lock if budget.pending else max(budget.last_failure + lock - now, 0.0)

    def admit(self, client: str) -> float:
        """0 when `client` may try a password now (the attempt is then charged), else seconds to wait."""
        now = self._clock()
        budget = self._client(client, now)
        wait = max(self._wait(budget, self.FREE_FAILURES, now),
                   self._wait(self._global, self.GLOBAL_FREE_FAILURES, now),
                   1.0 if self._global.pending >= self.MAX_PENDING else 0.0)
        if wait > 0:
            return wait
        budget.pending += 1
        self._global.pending += 1
        return 0.0

    def finished(self, client: str, ok: bool) -> int:
        """Record the outcome of an admitted attempt; returns how many failures to log now (0: stay quiet)."""
        now = self._clock()
        budget = self._client(client, now)
        budget.pending = max(budget.pending - 1, 0)
        self._global.pending = max(self._global.pending - 1, 0)
        if ok:
            return 0
        for item in (budget, self._global):
            item.failures += 1
            item.last_failure = now
        budget.unlogged += 1
        if now - budget.last_logged < self.LOG_EVERY_S:
            return 0
        count, budget.unlogged, budget.last_logged = budget.unlogged, 0, now
        return count


class DesktopSessions:
    """One-time login token for the desktop window, exchanged for session cookies."""

    def __init__(self, login_token: str | None = None) -> None:
        self._login_token = login_token
        self._sessions: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self._login_token is not None or bool(self._sessions)

    def exchange(self, token: str) -> str | None:
        """A new session id if `token` is the one-time login token (then consumed)."""
        expected = self._login_token
        if expected is None or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode()):
            return None
        self._login_token = None
        session = secrets.token_urlsafe(32)
        self._sessions.add(session)
        return session

    def is_valid(self, session: str | None) -> bool:
        if not session:
            return False
        return any(hmac.compare_digest(session.encode("utf-8", "surrogatepass"), s.encode()) for s in self._sessions)
