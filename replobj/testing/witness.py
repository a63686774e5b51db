"""Settling writes of unknown outcome from what later reads show, before the search.

A write whose outcome is unknown may take effect anywhere after its call, or never; each
one multiplies the configurations the search explores. When the model is a
:class:`~replobj.testing.WitnessedModel` and a write's token is unique in the history:

- if no completed call shows the token, the write is left out. Had it taken effect, every
  call linearized after it and before the token was overwritten would show the token (the
  state holds it); none does, so removing it from a linearization leaves a linearization;
- if some completed calls show it, it took effect before all of them (only it writes the
  token), so before the first of them returned: it becomes a completed call ending there.
  Every linearization of one history is a linearization of the other.

A token written by more than one call is left alone: a read cannot tell who wrote it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from .history import Operation
from .model import WitnessedModel

__all__ = ["settle_unknown_writes"]


def settle_unknown_writes(history: Sequence[Operation], model: WitnessedModel) -> list[Operation]:
    """``history`` with every unknown write of a unique token settled (see the module).

    :param history: the recorded operations.
    :param model: says which token each call writes and which tokens each call shows.
    :returns: a new list; known operations are unchanged and keep their order.
    """
    tokens = {index: model.written_token(op) for index, op in enumerate(history)}
    writers = Counter(token for token in tokens.values() if token is not None)
    first_shown: dict[Hashable, int] = {}
    for op in history:
        if op.return_time is None:
            continue
        for token in model.shown_tokens(op):
            if writers.get(token) == 1:
                seen = first_shown.get(token)
                if seen is None or op.return_time < seen:
                    first_shown[token] = op.return_time
    settled: list[Operation] = []
    for index, op in enumerate(history):
        token = tokens[index]
        if op.outcome_known or token is None or writers[token] != 1:
            settled.append(op)
            continue
        returned = first_shown.get(token)
        if returned is not None and returned >= op.call_time:
            settled.append(Operation(op.client, op.call_time, returned, op.name, op.input, None))
        elif returned is None:
            continue
        else:
            settled.append(op)
    return settled
