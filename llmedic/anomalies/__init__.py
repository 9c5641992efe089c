"""One home per anomaly type: its evidence collectors, its pure diagnosis (with its ``Diagnosis``
enum), its verification criteria and its typed step results.

A home is a package here (``latency/``, ``memory_leak/``, ``data/``, ``accuracy/``, ``gpu/``,
``dependency/``, ``network/``) with, by convention, ``diagnosis.py`` (pure: no adapter, no I/O, no
Prefect; it declares ``Diagnosis``), ``evidence.py`` (what the steps read), ``verify.py`` (the
verification criteria), ``results.py`` (the typed step results) and ``home.py`` (``HOME``, the
:class:`~llmedic.anomalies.base.Home` the step tasks in ``tasks/`` call into). The contract is in
``base.py``; ``runtime.py`` is what every step function receives.

Homes are imported when first asked for (:func:`home_of`, :func:`diagnosis_of`): a latency run does
not pay for the data home's pandas and SciPy.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import import_module
from typing import TYPE_CHECKING

from llmedic.catalog import AnomalyType

if TYPE_CHECKING:
    from llmedic.anomalies.base import AnyHome

__all__ = ["DIAGNOSES", "diagnoses_of", "diagnosis_of", "home_of"]

_HOMES: dict[AnomalyType, str] = {
    AnomalyType.LATENCY: "llmedic.anomalies.latency.home:HOME",
    AnomalyType.MEMORY_LEAK: "llmedic.anomalies.memory_leak.home:HOME",
    AnomalyType.DATA_MISSING: "llmedic.anomalies.data.home:MISSING",
    AnomalyType.DATA_FORMAT: "llmedic.anomalies.data.home:FORMAT",
    AnomalyType.DATA_QUALITY: "llmedic.anomalies.data.home:QUALITY",
    AnomalyType.ACCURACY_DROP: "llmedic.anomalies.accuracy.home:HOME",
    AnomalyType.DEPENDENCY_CONFLICT: "llmedic.anomalies.dependency.home:HOME",
    AnomalyType.NETWORK_INTERRUPTION: "llmedic.anomalies.network.home:HOME",
    AnomalyType.GPU_FAULT: "llmedic.anomalies.gpu.home:HOME",
}
"""Where each anomaly type's :class:`~llmedic.anomalies.base.Home` lives (``module:attribute``)."""

DIAGNOSES: dict[AnomalyType, str] = {
    AnomalyType.LATENCY: "llmedic.anomalies.latency.diagnosis:Diagnosis",
    AnomalyType.MEMORY_LEAK: "llmedic.anomalies.memory_leak.diagnosis:Diagnosis",
    AnomalyType.DATA_MISSING: "llmedic.anomalies.data.diagnosis:MissingDiagnosis",
    AnomalyType.DATA_FORMAT: "llmedic.anomalies.data.diagnosis:FormatDiagnosis",
    AnomalyType.DATA_QUALITY: "llmedic.anomalies.data.diagnosis:QualityDiagnosis",
    AnomalyType.ACCURACY_DROP: "llmedic.anomalies.accuracy.diagnosis:Diagnosis",
    AnomalyType.GPU_FAULT: "llmedic.anomalies.gpu.diagnosis:Diagnosis",
    AnomalyType.DEPENDENCY_CONFLICT: "llmedic.anomalies.dependency.diagnosis:Diagnosis",
    AnomalyType.NETWORK_INTERRUPTION: "llmedic.anomalies.network.diagnosis:Diagnosis",
}
"""Where each anomaly type's ``Diagnosis`` enum lives (every type has one; a test checks)."""


def _load(ref: str) -> object:
    module, _, name = ref.partition(":")
    return getattr(import_module(module), name)


def home_of(anomaly: AnomalyType) -> AnyHome:
    """The home of ``anomaly``: its diagnoses and the functions behind each response step."""
    from llmedic.anomalies.base import Home

    home = _load(_HOMES[anomaly])
    assert isinstance(home, Home), f"{_HOMES[anomaly]} is not a Home"
    return home


def diagnosis_of(anomaly: AnomalyType) -> type[StrEnum]:
    """The ``Diagnosis`` enum of ``anomaly``: the names its evidence step can end with."""
    enum = _load(DIAGNOSES[anomaly])
    assert isinstance(enum, type) and issubclass(enum, StrEnum), f"{DIAGNOSES[anomaly]} is not a StrEnum"
    return enum


def diagnoses_of(anomaly: AnomalyType) -> list[str]:
    """The diagnosis names an anomaly type can produce, in declaration order (what a playbook's
    ``fixes[].when`` may name)."""
    return [d.value for d in diagnosis_of(anomaly)]
