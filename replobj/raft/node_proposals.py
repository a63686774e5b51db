"""Proposals: when a node refuses them, and proposals forwarded to the leader."""

from __future__ import annotations

from . import actions as act
from .messages import ProposeReply, ProposeRequest
from .node_state import NodeState
from .types import NodeId, ProposalId, Refusal, RefusalReason, Role


class ProposalForwarding(NodeState):
    """Refusing proposals off the leader, and proposing on another member's behalf."""

    def _refuse_proposal(self) -> Refusal | None:
        if self.role is not Role.LEADER:
            return self._refusal(
                RefusalReason.NOT_LEADER if self.leader else RefusalReason.NO_LEADER,
                f"this node is not the leader (leader: {self.leader or 'unknown'})",
            )
        if self._transfer_to is not None:
            return self._refusal(
                RefusalReason.TRANSFER_IN_PROGRESS,
                f"leadership is being transferred to {self._transfer_to!r}; retry there",
            )
        return None

    def _propose_for(self, origin: NodeId, request_id: int, payloads: tuple[bytes, ...]) -> None:
        result = self.propose_batch(payloads)
        if origin == self.id:
            if isinstance(result, Refusal):
                self._actions.append(act.ProposalFailed(request_id, result.reason, result.message))
            else:
                self._actions.append(act.ProposalForwarded(request_id, tuple(result)))
            return
        if isinstance(result, Refusal):
            reply = ProposeReply(self.term, self.id, request_id, 0, 0, 0, result.reason.value)
        else:
            first = result[0].index if result else self.last_index + 1
            reply = ProposeReply(self.term, self.id, request_id, self.term, first, len(result))
        self._send(origin, reply)

    def _on_propose_request(self, m: ProposeRequest) -> None:
        if self.role is Role.LEADER:
            self._propose_for(m.sender, m.request_id, m.payloads)
            return
        reason = RefusalReason.NOT_LEADER if self.leader else RefusalReason.NO_LEADER
        reply = ProposeReply(self.term, self.id, m.request_id, 0, 0, 0, reason.value)
        self._send(m.sender, reply)

    def _on_propose_reply(self, m: ProposeReply) -> None:
        if m.refusal:
            try:
                reason = RefusalReason(m.refusal)
            except ValueError:
                reason = RefusalReason.NOT_LEADER
            message = f"the leader {m.sender!r} refused the proposal ({reason.value})"
            self._actions.append(act.ProposalFailed(m.request_id, reason, message))
            return
        proposals = tuple(
            ProposalId(m.proposal_term, m.first_index + i) for i in range(max(m.count, 0))
        )
        self._actions.append(act.ProposalForwarded(m.request_id, proposals))
