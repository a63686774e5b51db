"""The event loop replobj picks where it owns the loop: uvloop when installed.

``BlockingNode``'s thread, the demo's member processes and the benchmarks start their own
loop; with the ``replobj[fast]`` extra installed (uvloop) they run on uvloop, whose
futures, callbacks and sockets cost about half of asyncio's on the hot path. Code that
runs a ``Node`` inside its own loop chooses for itself (``anyio.run(main,
backend_options={"use_uvloop": True})``). Set ``REPLOBJ_UVLOOP=0`` to keep the plain
asyncio loop (to compare, or to rule uvloop out).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

__all__ = ["UVLOOP_ENV", "backend_options", "uvloop_in_use"]

UVLOOP_ENV = "REPLOBJ_UVLOOP"
"""Environment variable: ``0`` turns the automatic use of uvloop off."""


def uvloop_in_use(backend: str = "asyncio") -> bool:
    """Whether a loop replobj starts on ``backend`` runs on uvloop.

    :param backend: the anyio backend name (uvloop only serves ``"asyncio"``).
    """
    if backend != "asyncio" or os.environ.get(UVLOOP_ENV, "1") == "0":
        return False
    return importlib.util.find_spec("uvloop") is not None


def backend_options(backend: str = "asyncio") -> dict[str, Any]:
    """The ``backend_options`` for ``anyio.run`` / ``start_blocking_portal`` on ``backend``.

    :param backend: the anyio backend name.
    """
    return {"use_uvloop": True} if uvloop_in_use(backend) else {}
