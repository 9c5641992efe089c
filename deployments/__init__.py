"""Deployment assets shipped with llmedic: Prometheus rules, Alertmanager configuration."""
