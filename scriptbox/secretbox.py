"""Secrets at rest (SPEC §8.3): one AES-256-GCM key per installation.

The key comes from SCRIPTBOX_SECRET_KEY (32 bytes, base64) or, unset, from
`<data-dir>/secret.key`, generated once (0600). A sealed value is the text
``v1:<key id>:<base64url(nonce + ciphertext + tag)>``; the key id (a short hash
of the key, which reveals nothing usable about it) lets a server say "this was
sealed with another key" instead of a bare authentication failure.

AES-GCM from `cryptography` (pyca, the maintained standard) was chosen over
Fernet because it is an AEAD cipher with associated data (every value is bound
to the Scriptbox purpose string below) and needs no padding or separate MAC;
the nonce is random (96 bits) per value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("scriptbox.secrets")

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "secret.key"
VERSION = "v1"
# Associated data: a sealed value opens only as a Scriptbox secret of this format.
_PURPOSE = b"scriptbox secret v1"
GENERATE_HINT = "e.g. `openssl rand -base64 32`"


class SecretKeyError(ValueError):
    """The configured key or the key file cannot be used (said at start)."""


class SecretUnavailable(Exception):
    """A sealed value cannot be opened with this server's key; the message says why and what to do."""


def parse_key(raw: str) -> bytes:
    """A key given as text: 32 bytes in base64 (standard or URL-safe, padding optional).

    Raises SecretKeyError (a ValueError: the settings table reports it).
    """
    text = raw.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyError(f"must be {KEY_BYTES} bytes in base64 ({GENERATE_HINT})") from None
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"must be {KEY_BYTES} bytes in base64, got {len(key)} bytes ({GENERATE_HINT})")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"scriptbox key id\0" + key).hexdigest()[:8]


class SecretBox:
    """Seals and opens secret values with this installation's key."""

    def __init__(self, key: bytes, origin: str = "a key") -> None:
        if len(key) != KEY_BYTES:
            raise SecretKeyError(f"the secret key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)
        self.origin = origin  # where the key came from, for messages

    def seal(self, value: str) -> str:
        """The sealed (encrypted, authenticated) form of `value`."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        blob = nonce + self._aead.encrypt(nonce, value.encode("utf-8", "surrogatepass"), _PURPOSE)
        return f"{VERSION}:{self.key_id}:{base64.urlsafe_b64encode(blob).decode('ascii')}"

    def open(self, sealed: str, what: str) -> str:
        """The clear value of `sealed`; `what` names it in the error (e.g. "env API_KEY").

        Raises SecretUnavailable when it was sealed with another key or is damaged.
        """
        parts = sealed.split(":", 2) if isinstance(sealed, str) else []
        if len(parts) != 3 or parts[0] != VERSION:
            raise SecretUnavailable(f"the secret {what} is stored in a form this server cannot read; enter it again")
        if parts[1] != self.key_id:
            raise SecretUnavailable(
                f"the secret {what} was encrypted with another key (key id {parts[1]}; this server's key, from "
                f"{self.origin}, has id {self.key_id}): set SCRIPTBOX_SECRET_KEY to the key it was saved with, "
                "or enter the secret again")
        try:
            blob = base64.urlsafe_b64decode(parts[2].encode("ascii"))
            clear = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _PURPOSE)
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretUnavailable(f"the secret {what} cannot be decrypted (damaged); enter it again") from None
        return clear.decode("utf-8", "surrogatepass")


def load_secret_box(configured: str | None, data_dir: Path) -> SecretBox:
    """The installation's SecretBox: from SCRIPTBOX_SECRET_KEY, else `<data-dir>/secret.key`.

    The key file is created once (0600, exclusively, so two processes sharing a
    data dir agree on one key). Raises SecretKeyError when the file is unreadable
    or not a key.
    """
    if configured:
        return SecretBox(parse_key(configured), "SCRIPTBOX_SECRET_KEY")
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        raise SecretKeyError(f"cannot read {path}: {exc}") from exc
    try:
        return SecretBox(parse_key(text), str(path))
    except SecretKeyError as exc:
        raise SecretKeyError(f"{path}: {exc}") from None


def _create_key_file(path: Path) -> None:
    """Write a new key to `path` unless another process got there first.

    The key is written to a private temporary file and linked into place, so
    a reader never sees a half-written key and exactly one key wins.
    """
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n")
        try:
            os.link(tmp, path)
            log.info("generated the secret key %s (back it up with the database: stored secrets cannot be "
                     "read without it)", path)
        except FileExistsError:
            pass
    except OSError as exc:
        raise SecretKeyError(f"cannot create {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
