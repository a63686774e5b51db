"""The cluster secret: how to make one, the checks it must pass, and the key derived from it.

A secret is required and at least 16 bytes: commands carry pickles, so a node that anyone
can connect to runs anyone's code. The transports never use the secret directly: they use
:func:`cluster_key`, stretched with scrypt once per process, so a captured transcript is
expensive to attack offline even for a weak secret.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import Final

from .errors import WeakSecretError

__all__ = ["MIN_SECRET_BYTES", "check_secret", "cluster_key", "new_secret"]

MIN_SECRET_BYTES: Final = 16
"""The shortest secret a node accepts."""

_HOW_TO_MAKE_ONE: Final = (
    'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))" '
    "and give every member the same value"
)
_SCRYPT_SALT: Final = b"replobj-cluster-key-v1"


def new_secret() -> str:
    """A fresh random secret (256 bits, URL-safe text) for a new cluster."""
    return secrets.token_urlsafe(32)


def check_secret(secret: object, *, parameter: str = "secret") -> bytes:
    """Return ``secret`` as bytes, or refuse it.

    :raises ~replobj.errors.WeakSecretError: if it is missing, not ``str``/``bytes``, or
        shorter than :data:`MIN_SECRET_BYTES` bytes; the message says how to make one.
    """
    if secret is None:
        raise WeakSecretError(
            f"{parameter} is required (every member proves it); {_HOW_TO_MAKE_ONE}"
        )
    if isinstance(secret, str):
        raw = secret.encode()
    elif isinstance(secret, bytes | bytearray):
        raw = bytes(secret)
    else:
        raise WeakSecretError(
            f"{parameter} must be str or bytes, got {type(secret).__name__}; {_HOW_TO_MAKE_ONE}"
        )
    if len(raw) < MIN_SECRET_BYTES:
        raise WeakSecretError(
            f"{parameter} is {len(raw)} bytes; at least {MIN_SECRET_BYTES} are required "
            f"(a short secret can be guessed); {_HOW_TO_MAKE_ONE}"
        )
    return raw


@functools.lru_cache(maxsize=32)
def cluster_key(secret: bytes) -> bytes:
    """The 32-byte key the transports derive everything from: scrypt of ``secret``, with the
    parameters docs/wire.md states (a test holds the two together).

    Cached per process: a node pays the stretching (tens of milliseconds) once.
    """
    return hashlib.scrypt(secret, salt=_SCRYPT_SALT, n=1 << 14, r=8, p=1, dklen=32)
