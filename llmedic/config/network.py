"""The network links the services depend on, and the artifacts they carry."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field

from llmedic.config._base import Name, _Strict

__all__ = ["NetworkConfig", "NetworkLink", "SyncArtifact"]


class SyncArtifact(_Strict):
    """A file a link carries (model weights, a dataset): resumable, checksum-verified."""

    url: AnyHttpUrl
    """Where the artifact is downloaded from (HTTP range requests resume an interrupted copy)."""
    dest: Path
    """Where the verified copy goes."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class NetworkLink(_Strict):
    """A network dependency of the services: an endpoint they call or sync from."""

    url: AnyHttpUrl
    """What is probed (a health URL of the far end)."""
    backup_url: AnyHttpUrl | None = None
    """Where ``failover`` points the consumers."""
    consumers: list[Name] = Field(default_factory=list)
    """Services that depend on this link (named in the incident)."""
    artifact: SyncArtifact | None = None
    failover_command: Name | None = None
    """Allowlisted command (params ``link`` and ``url``) that repoints the consumers; without one
    llmedic records the active endpoint in ``<home>/network/active.json`` for them to read."""
    probe_from: list[Name] = Field(default_factory=list)
    """Hosts that probe the link too (through their ``net_probe`` command, param ``url``, printing
    ``<http code> <seconds>`` as ``curl -w '%{http_code} %{time_total}'`` does): tells a broken
    far end from a broken path between llmedic and it."""


class NetworkConfig(_Strict):
    """The links network incidents are about."""

    links: dict[Name, NetworkLink] = Field(default_factory=dict)
