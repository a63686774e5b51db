"""Ready-made replicated types: attach one and call it like any ``@replicated`` object.

Each is an ordinary ``@replicated`` class with a stable name (``"replobj.batteries.Dict"``
...), so it can be attached under any object name and unit-tested as a plain object::

    queue = node.attach("jobs", replobj.batteries.Queue())
    lock = node.attach("printer", replobj.batteries.Lock())
    async with node:
        await queue.put("job-1")
        token = await lock.acquire(owner="worker-7", ttl=10.0)

Collections: :class:`Counter`, :class:`Register`, :class:`Dict`, :class:`Set`,
:class:`List`, :class:`Queue`. Coordination on leases measured in leader time, each grant
with a fencing token: :class:`Lock`, :class:`Semaphore`, :class:`LeaderElection`, and
:class:`Fence` for the resource that checks tokens. See ``docs/batteries.md``.
"""

from __future__ import annotations

from .counter import Counter
from .dict import Dict
from .election import LeaderElection
from .leases import Lease, LeaseTable
from .list import List
from .lock import Fence, Lock
from .queue import Queue
from .register import Register
from .semaphore import Semaphore
from .set import Set

__all__ = [
    "Counter",
    "Dict",
    "Fence",
    "LeaderElection",
    "Lease",
    "LeaseTable",
    "List",
    "Lock",
    "Queue",
    "Register",
    "Semaphore",
    "Set",
]
