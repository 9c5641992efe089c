"""The scheduled reviews, each in one place, and the review incidents they open.

* ``capacity/`` — the monthly capacity review (Prometheus history, the maths, chart, report);
* ``backups`` — the weekly backup verification (and ``llmedic backup make``);
* ``data_audit`` — the monthly data audit review (the audit itself is the data home's);
* ``golden_sample`` — the daily golden-set sample of every service;
* ``release_gate`` — the release gate a candidate model version passes before promotion;
* ``incidents`` — review incidents: what a review found that needs the ops team.

Each module holds its review's request model, its logic and its report; ``flows/`` wires them and
``tasks/review.py`` holds their Prefect tasks and artifacts.
"""
