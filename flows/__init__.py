"""Prefect flows: one per anomaly type, plus the scheduled flows. Flows only wire tasks."""
