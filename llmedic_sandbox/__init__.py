"""A simulated vertical LLM service (clinical drug interactions) with fault injection.

OpenAI-compatible ``/v1/models`` and ``/v1/chat/completions``, ``/health``, ``/metrics`` with vLLM
metric names, and an admin API to inject faults and to act on the instance (drain, restart,
concurrency limit, model version). Used by ``llmedic demo``, the tests and game days.
"""
