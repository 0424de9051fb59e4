"""Who may talk to Scriptbox: admin credentials, sessions and request guards.

* The admin password is never stored in clear: either it is configured
  (SCRIPTBOX_ADMIN_PASSWORD) and hashed in memory at start, or the first start
  generates one, prints it once and keeps only its Argon2 hash in the data dir.
  Argon2 (argon2-cffi) is the maintained, memory-hard choice; its cost also
  slows down guessing.
* Basic auth checks a successful password once with Argon2, then remembers an
  HMAC of it so the many requests of a live page do not each pay ~50 ms.
  Every comparison is constant-time.
* Repeated failures from one address are answered more and more slowly.
* Desktop sessions: the desktop launcher hands the server a one-time token on
  stdin; a loopback client exchanges it for an HttpOnly cookie. Cookies are
  honoured only from loopback peers, so remote access still needs Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
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


class CredentialChecker:
    """Constant-time check of the admin user name and password."""

    def __init__(self, user: str, password_hash: str) -> None:
        self._user = user.encode("utf-8")
        self._hash = password_hash
        self._hasher = PasswordHasher()
        self._key = secrets.token_bytes(32)
        self._verified: bytes | None = None  # HMAC of the last password that verified
        self._lock = threading.Lock()

    @property
    def user(self) -> str:
        return self._user.decode("utf-8")

    def check(self, user: str, password: str) -> bool:
        user_ok = hmac.compare_digest(user.encode("utf-8", "surrogatepass"), self._user)
        mac = hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        verified = self._verified
        if verified is not None and hmac.compare_digest(mac, verified):
            return user_ok
        try:
            self._hasher.verify(self._hash, password.encode("utf-8", "surrogatepass"))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        with self._lock:
            self._verified = mac
        return user_ok


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


class FailureThrottle:
    """Slows down answers to addresses that keep failing to authenticate.

    The first few failures are free (typos happen); after that each failure
    doubles the delay, up to MAX_DELAY_S. The table is bounded.
    """

    FREE_FAILURES = 3
    BASE_DELAY_S = 0.25
    MAX_DELAY_S = 8.0
    FORGET_AFTER_S = 15 * 60
    MAX_ADDRESSES = 10_000

    def __init__(self) -> None:
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def delay_for(self, address: str) -> float:
        """Seconds to wait before answering a failed attempt from `address`."""
        count, last = self._failures.get(address, (0, 0.0))
        now = time.monotonic()
        if now - last > self.FORGET_AFTER_S:
            count = 0
        count += 1
        self._failures[address] = (count, now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.popitem(last=False)
        if count <= self.FREE_FAILURES:
            return 0.0
        return float(min(self.BASE_DELAY_S * 2 ** (count - self.FREE_FAILURES - 1), self.MAX_DELAY_S))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


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
