"""Signing secrets of signed webhooks (Standard Webhooks; docs/contract.md §3, §11).

A secret is ``whsec_`` followed by the standard base64 (``A-Z a-z 0-9 + /``, padded with
``=`` as Python's :func:`base64.b64encode` and the Standard Webhooks libraries write it)
of 24 to 64 random bytes; those bytes are the HMAC-SHA256 key. An integration has at most
:data:`MAX_SIGNING_SECRETS`, newest first, none twice.

Secrets are as secret as header values: no function here puts one, or any part of one,
into a message. Problems name a secret by its position (``secret 2``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from typing import Any, Final

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SIGNING_SECRETS",
    "MIN_KEY_BYTES",
    "NEW_KEY_BYTES",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER_NAMES",
    "fingerprint",
    "new_signing_secret",
    "signing_key",
    "signing_secret_problems",
]

SECRET_PREFIX: Final = "whsec_"
MAX_SIGNING_SECRETS: Final = 3
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
#: The size of the keys :func:`new_signing_secret` makes (the console's ``Generate secret``).
NEW_KEY_BYTES: Final = 32
#: The headers a signed request carries (lower case, as the Standard Webhooks libraries
#: write them); a config cannot set them.
SIGNATURE_HEADER_NAMES: Final = ("webhook-id", "webhook-timestamp", "webhook-signature")

#: The longest base64 of a valid key: 64 bytes take 88 characters.
_MAX_BASE64: Final = 4 * ((MAX_KEY_BYTES + 2) // 3)
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_NOT_A_LIST: Final = "must be a list of secrets (strings), or null"


def _key_or_problem(secret: object, position: int) -> bytes | str:
    """The key of ``secret``, or why it is not a signing secret (naming its ``position``)."""
    name = f"secret {position}"
    if type(secret) is not str:
        return f"{name} must be a string"
    if not secret.startswith(SECRET_PREFIX):
        return f"{name} must start with {SECRET_PREFIX}"
    text = secret[len(SECRET_PREFIX) :]
    not_base64 = (
        f"{name} is not standard base64 after {SECRET_PREFIX} (A-Z, a-z, 0-9, + and /, "
        "padded with = to a multiple of 4 characters)"
    )
    if len(text) % 4 or not _BASE64.fullmatch(text):
        return not_base64
    size = f"{name} must be the base64 of {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes"
    if len(text) > _MAX_BASE64:
        return size  # without decoding it
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        return not_base64
    # One text per key: stray bits in the last character would make a second spelling.
    if base64.b64encode(key).decode("ascii") != text:
        return not_base64
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return size
    return key


def signing_secret_problems(value: Any) -> list[str]:
    """What is wrong with ``value`` as an integration's ``signing_secrets`` (empty: nothing).
    Never quotes a secret."""
    if type(value) is not list:
        return [_NOT_A_LIST]
    problems: list[str] = []
    if len(value) > MAX_SIGNING_SECRETS:
        problems.append(f"at most {MAX_SIGNING_SECRETS} signing secrets are allowed")
    seen: dict[bytes, int] = {}
    for position, secret in enumerate(value, start=1):
        key = _key_or_problem(secret, position)
        if type(key) is str:
            problems.append(key)
        elif type(key) is bytes:
            if key in seen:
                problems.append(f"secret {position} is the same as secret {seen[key]}")
            else:
                seen[key] = position
    return problems


def signing_key(secret: str) -> bytes:
    """The HMAC key of a valid signing secret: the base64-decoded text after ``whsec_``."""
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


def new_signing_secret() -> str:
    """A new random signing secret: ``whsec_`` and the base64 of :data:`NEW_KEY_BYTES`
    bytes from :func:`secrets.token_bytes`."""
    key = secrets.token_bytes(NEW_KEY_BYTES)
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def fingerprint(secret: str) -> str:
    """A short name for a secret that reveals nothing of it: the first 8 hexadecimal
    digits of the SHA-256 of its key (what the console shows and removes by)."""
    return hashlib.sha256(signing_key(secret)).hexdigest()[:8]
