"""llmedic: Prefect-orchestrated remediation playbooks for domain-specific LLM services."""

__version__ = "0.1.0"
