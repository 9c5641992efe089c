"""The one error tree of llmedic.

Two families, so callers can tell "fix your file" from "something outside failed"::

    LlmedicError
    ├── AuthoringError            a mistake in something an operator wrote; fix it and retry
    │   ├── ConfigError           llmedic.yaml / settings
    │   ├── PlaybookError         playbooks/*.yaml, or a playbook override
    │   ├── UnknownAnomalyType    a name that is not in the catalogue
    │   ├── AlertPayloadError     an alert body that does not match its schema (4xx, never retried)
    │   ├── DatasetError          a data file or batch that cannot be read as its declared schema
    │   └── GoldenSetError        a golden set or adversarial set file that cannot be used
    └── OperationalError          the outside world failed; often transient
        ├── MetricsSourceError    Prometheus / direct scrape unreachable or answering nonsense
        ├── EndpointError         the target LLM service unreachable or answering nonsense
        ├── ControlError          drain / restart / scale actions refused or failed
        │   └── BlastRadiusExceeded  too many of a service's instances acted on within the window
        ├── RemoteCommandError    a shell command (local or SSH) failed or timed out
        ├── OrchestrationError    the Prefect API refused or is unreachable
        │   └── FlowRunNotFound   the Prefect server has no such flow run (deleted, or another server)
        ├── OutboxError           the receiver's outbox (SQLite / PostgreSQL) cannot be used
        ├── StoreError            the state store's database (SQLite / PostgreSQL) cannot be used
        ├── DataStoreError        the versioned dataset store cannot be read or written
        ├── ModelRegistryError    the model registry cannot be read or written
        │   └── UpdatesFrozen     a release or data change refused while an incident froze updates
        ├── ApprovalError         an approval cannot be given (run not waiting, not an approver, ...)
        │   ├── ApprovalRefused   a decision whose author could not be verified; it did not count
        │   └── ApprovalRequired  a risky fix was about to run without an approval
        ├── VerificationFailed    a fix did not bring the service back within its criteria
        ├── StepFailed            a step raised an error llmedic does not translate (timeout, bug)
        └── RunEnded              a flow run ended (failed, crashed, cancelled, gone) with its incident open

Every error carries a stable ``code`` (documented in ``docs/errors.md``; a test keeps the two
identical) and, where it can, a ``hint`` that says how to fix the problem. Third-party errors are
translated into this tree at one seam per outside system (see ``llmedic/adapters``).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlertPayloadError",
    "ApprovalError",
    "ApprovalRefused",
    "ApprovalRequired",
    "AuthoringError",
    "BlastRadiusExceeded",
    "ConfigError",
    "ControlError",
    "DataStoreError",
    "DatasetError",
    "EndpointError",
    "FlowRunNotFound",
    "GoldenSetError",
    "LlmedicError",
    "MetricsSourceError",
    "ModelRegistryError",
    "OperationalError",
    "OrchestrationError",
    "OutboxError",
    "PlaybookError",
    "RemoteCommandError",
    "RunEnded",
    "StepFailed",
    "StoreError",
    "UnknownAnomalyType",
    "UpdatesFrozen",
    "VerificationFailed",
    "all_error_codes",
]


class LlmedicError(Exception):
    """Base class of every error llmedic raises on purpose."""

    code: ClassVar[str] = "llmedic-error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class AuthoringError(LlmedicError):
    """Something an operator wrote (a file, an override, a command line) is wrong."""

    code = "authoring-error"


class ConfigError(AuthoringError):
    """``llmedic.yaml`` or an ``LLMEDIC_*`` setting is invalid."""

    code = "config-invalid"


class PlaybookError(AuthoringError):
    """A playbook file (or an override applied to it) is invalid."""

    code = "playbook-invalid"


class UnknownAnomalyType(AuthoringError):
    """A name that is not one of the nine anomaly types of the catalogue."""

    code = "anomaly-unknown"


class AlertPayloadError(AuthoringError):
    """An alert body does not match the schema of the endpoint it was sent to."""

    code = "alert-invalid"


class DatasetError(AuthoringError):
    """A data file or batch cannot be used as its declared dataset (unreadable, wrong encoding,
    empty, or missing a declared column)."""

    code = "dataset-invalid"


class GoldenSetError(AuthoringError):
    """A golden set (or adversarial prompt set) cannot be used: missing, empty, a line that is not
    a JSON object, or an item without a question or accepted answers."""

    code = "golden-set-invalid"


class OperationalError(LlmedicError):
    """Something outside llmedic failed; retrying later may cure it."""

    code = "operational-error"


class MetricsSourceError(OperationalError):
    """The metrics source (Prometheus or a direct scrape) is unreachable or answered nonsense."""

    code = "metrics-unavailable"


class EndpointError(OperationalError):
    """The target LLM service is unreachable or answered something unexpected."""

    code = "endpoint-unavailable"


class ControlError(OperationalError):
    """An action on the target service (drain, restart, scale, limits) was refused or failed."""

    code = "control-failed"


class BlastRadiusExceeded(ControlError):
    """A drain, restart or reset would take more of a service's instances than ``limits:`` allows
    within its window, counted over every concurrent incident; llmedic escalates instead."""

    code = "blast-radius-exceeded"


class RemoteCommandError(OperationalError):
    """A command run through the shell adapter failed, timed out or could not be started."""

    code = "command-failed"


class OrchestrationError(OperationalError):
    """The Prefect API refused a request or could not be reached."""

    code = "orchestration-failed"


class FlowRunNotFound(OrchestrationError):
    """The Prefect server answered that it has no such flow run (deleted, or asked the wrong server)."""

    code = "flow-run-not-found"


class OutboxError(OperationalError):
    """The receiver's durable outbox cannot be read or written right now."""

    code = "outbox-unavailable"


class StoreError(OperationalError):
    """The state store's database (incidents, knowledge base, registry, ...) cannot be opened, read
    or written right now (unreachable PostgreSQL, a locked or damaged SQLite file, a failed migration)."""

    code = "store-unavailable"


class DataStoreError(OperationalError):
    """The versioned dataset store cannot be read or written (disk, permissions, a damaged manifest,
    an unknown version)."""

    code = "datastore-failed"


class ModelRegistryError(OperationalError):
    """The model registry (releases, baselines, freezes under ``<home>/models``) cannot be read or
    written, or names a version it does not know."""

    code = "model-registry-failed"


class UpdatesFrozen(ModelRegistryError):
    """A model release or dataset change was refused because an open incident froze updates."""

    code = "updates-frozen"


class ApprovalError(OperationalError):
    """An approval decision could not be delivered or is not valid."""

    code = "approval-invalid"


class ApprovalRefused(ApprovalError):
    """A decision whose author could not be verified (not an approver, a wrong token); it did not count."""

    code = "approval-refused"


class ApprovalRequired(ApprovalError):
    """A risky fix was about to run without a valid approval; it was not run."""

    code = "approval-required"


class VerificationFailed(OperationalError):
    """A fix did not bring the service back within the playbook's verification criteria."""

    code = "verification-failed"


class StepFailed(OperationalError):
    """A step raised an error that is not an llmedic error (a task timeout, a library's exception,
    a bug); the incident escalated with the error's type and message."""

    code = "step-failed"


class RunEnded(OperationalError):
    """A flow run ended (failed, crashed, cancelled, or deleted from the Prefect server) while its
    incident was still open; the run's state hook or the reconciler closed the incident escalated."""

    code = "run-ended"


def all_error_codes() -> list[str]:
    """Every error code, in the order of the tree (depth first)."""

    def walk(cls: type[LlmedicError]) -> list[str]:
        codes = [cls.code]
        for sub in cls.__subclasses__():
            codes.extend(walk(sub))
        return codes

    return walk(LlmedicError)
