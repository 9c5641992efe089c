"""Process settings, read from ``LLMEDIC_*`` environment variables: *where* things are."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmedic.errors import ConfigError

__all__ = ["Settings", "settings_from_env"]


class Settings(BaseSettings):
    """Process settings, read from ``LLMEDIC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LLMEDIC_", extra="ignore", use_attribute_docstrings=True)

    home: Path = Path(".llmedic")
    """State directory: Prefect database, the state store's SQLite file (unless ``store_url``),
    rendered reports, datasets, logs."""
    config: Path | None = None
    """Environment file; default ``./llmedic.yaml`` if it exists, else ``<home>/llmedic.yaml``."""
    playbooks_dir: Path | None = None
    """Directory of playbook YAML files that override the shipped ones, file by file."""
    approval_sweep_seconds: float = 15.0
    """How often ``llmedic up`` looks for approvals past their deadline."""
    receiver_token: SecretStr | None = None
    """Bearer token the receiver requires (or ``receiver_token_file``)."""
    receiver_token_file: Path | None = None
    """File holding the bearer token (one line)."""
    receiver_basic_user: str | None = None
    """Basic-auth user the receiver accepts, with ``receiver_basic_password``."""
    receiver_basic_password: SecretStr | None = None
    """Its password (never logged)."""
    grafana_hmac_secret: SecretStr | None = None
    """When set, Grafana bodies must carry a valid ``X-Grafana-Alerting-Signature``."""
    grafana_timestamp_header: str = "X-Grafana-Alerting-Signature-Timestamp"
    """Header with the timestamp Grafana signs along with the body (when it sends one)."""
    receiver_max_body_bytes: int = 1_048_576
    """Larger request bodies are refused with HTTP 413."""
    store_url: SecretStr | None = None
    """The state store's database (``postgresql://user:pass@host/db`` for several hosts, or
    ``sqlite:///PATH``); default ``sqlite:///<home>/llmedic.db``. Incidents, approvals, the knowledge
    base, review incidents, the model registry, the audit history and the outbox live there."""
    outbox_url: SecretStr | None = None
    """A separate database for the receiver's outbox only (kept for deployments that set it before
    the state store existed); default: the state store (``store_url``)."""
    approvers_file: Path | None = None
    """The approver tokens (``approvers: {NAME: TOKEN}``, mode 0600, written by ``llmedic approvers
    add``); default ``<home>/approvers.yaml``. A file group or others can read is refused."""

    def approvers_path(self) -> Path:
        """The approver tokens file this process uses."""
        return self.approvers_file if self.approvers_file is not None else self.home / "approvers.yaml"

    def config_path(self) -> Path:
        """The environment file this process uses."""
        if self.config is not None:
            return self.config
        local = Path("llmedic.yaml")
        return local if local.exists() else self.home / "llmedic.yaml"

    @property
    def store_path(self) -> Path:
        """The state store's SQLite file (when ``store_url`` is not set)."""
        return self.home / "llmedic.db"

    def receiver_bearer(self) -> str | None:
        """The bearer token from the setting or the token file."""
        if self.receiver_token is not None:
            return self.receiver_token.get_secret_value()
        if self.receiver_token_file is not None:
            try:
                token = self.receiver_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"LLMEDIC_RECEIVER_TOKEN_FILE={self.receiver_token_file}: cannot be read ({exc.strerror})"
                ) from None
            if not token:
                raise ConfigError(f"LLMEDIC_RECEIVER_TOKEN_FILE={self.receiver_token_file} is empty")
            return token
        return None

    @property
    def datasets_dir(self) -> Path:
        """The versioned dataset store."""
        return self.home / "datasets"

    @property
    def kb_dir(self) -> Path:
        """Rendered reports of archived incidents (Markdown + JSON); their index is in the state store."""
        return self.home / "kb"


def settings_from_env() -> Settings:
    """Settings from the environment, with a clear error for a bad ``LLMEDIC_*`` value."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"LLMEDIC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid setting: {problems}", hint="fix the environment variable") from None
