"""Everything about the approval gate, in one place.

- :mod:`~llmedic.approval.identity` — who decides: approver tokens, token proofs, one-time codes,
  llmedic's own key (no Prefect)
- :mod:`~llmedic.approval.gate` — the gate's pure logic: :class:`Gate`, judging a decision
  (:func:`judge`, :func:`decide`), the records and form texts it produces (no Prefect, no I/O)
- :mod:`~llmedic.approval.guard` — :func:`require_approval`, the one check before a risky fix runs
- :mod:`~llmedic.approval.decisions` — decisions from outside the flow (CLI, demo, the timeout
  sweeper) sent through Prefect's resume API

The Prefect step that opens the gate and pauses or suspends the flow is ``tasks/approve.py``.
"""

from llmedic.approval.decisions import (
    ApprovalDecision,
    pending_gate,
    resolve_run,
    submit_decision,
    sweep_expired,
)
from llmedic.approval.gate import Gate, GateOpened, Verdict, decide, judge
from llmedic.approval.guard import require_approval
from llmedic.approval.identity import (
    PROOF_PREFIX,
    TIMEOUT_APPROVER,
    Identity,
    add_token,
    code_digest,
    make_proof,
    new_code,
    read_secret_file,
    read_tokens,
    system_key,
    valid_person,
)

__all__ = [
    "PROOF_PREFIX",
    "TIMEOUT_APPROVER",
    "ApprovalDecision",
    "Gate",
    "GateOpened",
    "Identity",
    "Verdict",
    "add_token",
    "code_digest",
    "decide",
    "judge",
    "make_proof",
    "new_code",
    "pending_gate",
    "read_secret_file",
    "read_tokens",
    "require_approval",
    "resolve_run",
    "submit_decision",
    "sweep_expired",
    "system_key",
    "valid_person",
]
