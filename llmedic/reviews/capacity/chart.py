"""The capacity review's chart: one panel per resource with data, its capacity and the reserve line."""

from __future__ import annotations

import io

from llmedic.reviews.capacity.history import ServiceReview
from llmedic.reviews.capacity.report import LABELS

__all__ = ["chart_png"]


def chart_png(review: ServiceReview) -> bytes:
    """One panel per resource with data: the series, its capacity and the reserve line (PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    names = [n for n, (t, _) in review.series.items() if t]
    fig, axes = plt.subplots(
        len(names) or 1, 1, figsize=(9, 2.2 * max(1, len(names))), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=False):
        t, y = review.series[name]
        r = review.resources[name]
        ax.plot([datetime.fromtimestamp(x, UTC) for x in t], y, linewidth=0.8, label=LABELS.get(name, name))
        if r.note != "no capacity declared":
            ax.axhline(r.capacity, color="black", linewidth=0.8, linestyle="-", label="capacity")
            ax.axhline(
                (1 - r.reserve) * r.capacity, color="red", linewidth=0.8, linestyle="--", label="reserve line"
            )
        ax.set_ylabel(f"{LABELS.get(name, name)}\n({r.unit})", fontsize=8)
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    fig.suptitle(f"{review.service}: last {round((review.end - review.start) / 86_400)} days")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
