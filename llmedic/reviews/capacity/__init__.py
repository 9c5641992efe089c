"""The monthly capacity review, in one place.

``history`` reads a service's 30 days from Prometheus (DCGM and vLLM metrics) and reviews them;
``analysis`` is the pure maths (percentiles, headroom, trend, recommendations; NumPy and SciPy,
no I/O); ``chart`` and ``report`` draw and write what it found; ``review`` runs a whole review
(request, outputs, review incidents). ``flows/capacity_review.py`` wires it, with the Prefect task
and artifacts from ``tasks/review.py``.
"""
