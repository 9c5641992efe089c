"""Shipped playbooks: one ``<anomaly>.yaml`` per anomaly type (see ``docs/playbooks.md``)."""
