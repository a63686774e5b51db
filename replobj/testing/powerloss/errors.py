"""Errors of the power-loss filesystem harness."""

from __future__ import annotations

from replobj.errors import ReplObjError

__all__ = ["PowerLossMountError"]


class PowerLossMountError(ReplObjError, OSError):
    """The power-loss filesystem could not be mounted, served or unmounted.

    The message says what to change (run as root, give the container ``/dev/fuse``, ...).
    """
