"""Reusable Prefect tasks, grouped by response step.

``confirm``, ``assess``, ``evidence``, ``isolate``, ``reproduce``, ``approve``, ``fix``, ``verify``,
``archive`` and ``notify`` hold the step tasks; ``skeleton`` composes them into the guide's response
process, which every anomaly flow runs with its own step tasks.
"""
