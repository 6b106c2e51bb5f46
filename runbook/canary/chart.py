"""A PNG chart of health latency and error rate over the canary window (matplotlib, Agg)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from runbook.canary.state import Sample


def render_chart(samples: Sequence[Sample], *, title: str = "Canary window") -> bytes:
    """PNG bytes: latency (ms, left axis) and 5xx rate (%, right axis); failures marked."""
    # Figure + FigureCanvasAgg, not pyplot: no global state, safe from worker threads
    fig = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=11)
    if not samples:
        ax.text(0.5, 0.5, "no health samples in the window", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        times = [s.at for s in samples]
        lat = [s.latency_ms if s.latency_ms is not None else float("nan") for s in samples]
        # matplotlib plots datetimes (its date units); its stubs accept numbers only
        ax.plot(times, lat, color="#1f77b4", linewidth=1.5,  # type: ignore[arg-type]
                label="health latency (ms)")
        bad = [(s.at, s.latency_ms or 0.0) for s in samples if not s.ok]
        if bad:
            ax.scatter([t for t, _ in bad], [v for _, v in bad],  # type: ignore[arg-type]
                       color="#d62728", marker="x",
                       zorder=3, label="health failed")
        ax.set_ylabel("latency (ms)")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M"))
        rates = [(s.at, s.error_rate * 100) for s in samples if s.error_rate is not None]
        handles, labels = ax.get_legend_handles_labels()
        if rates:
            ax2 = ax.twinx()
            ax2.plot([t for t, _ in rates], [r for _, r in rates],  # type: ignore[arg-type]
                     color="#ff7f0e",
                     linewidth=1.2, linestyle="--", label="5xx rate (%)")
            ax2.set_ylabel("5xx rate (%)")
            ax2.set_ylim(bottom=0, top=max(1.0, max(r for _, r in rates) * 1.2))
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_xlabel("time (UTC)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
