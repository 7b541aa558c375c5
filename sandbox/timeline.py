"""A picture of a release under load: requests per colour and failures over time, with the steps marked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .load import Sample

COLORS = {"blue": "#1f77b4", "green": "#2ca02c", "none": "#7f7f7f"}


def bins(samples: Sequence[Sample], width: float = 0.5) -> tuple[list[float], dict[str, list[int]], list[int]]:
    """Requests per colour and failures per ``width``-second bin, from the first request on."""
    if not samples:
        return [], {}, []
    start = min(s.started for s in samples)
    count = math.ceil((max(s.started for s in samples) - start) / width) + 1
    per_color: dict[str, list[int]] = {}
    failures = [0] * count
    for sample in samples:
        index = int((sample.started - start) / width)
        if sample.failed:
            failures[index] += 1
        else:
            per_color.setdefault(sample.color or "none", [0] * count)[index] += 1
    return [i * width for i in range(count)], per_color, failures


def draw(samples: Sequence[Sample], events: Sequence[tuple[float, ...]], path: str | Path, title: str, width: float = 0.5) -> Path:
    """Write the timeline PNG; ``events`` are (time.time(), label[, colour]) marks such as the switch, a detection, the drain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, per_color, failures = bins(samples, width)
    start = min(s.started for s in samples) if samples else 0.0
    figure, axes = plt.subplots(figsize=(12, 5.5), dpi=100)
    for color in sorted(per_color):
        rate = [n / width for n in per_color[color]]
        axes.plot(times, rate, label=f"{color} (requests/s)", color=COLORS.get(color), linewidth=1.6)
    axes.bar(times, [n / width for n in failures], width=width, color="#d62728", label=f"failed (requests/s), total {sum(failures)}")
    top = max([1.0] + [n / width for series in per_color.values() for n in series])
    for moment, label, *rest in events:
        x = moment - start
        color = rest[0] if rest else "#444444"
        axes.axvline(x, color=color, linestyle="--", linewidth=1.6 if rest and color != "#444444" else 1)
        axes.text(x, top * 1.02, label, rotation=90, va="bottom", ha="right", fontsize=8, color=color)
    axes.set_ylim(0, top * 1.9)  # room for the marks' labels
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("requests per second")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    plt.close(figure)
    return target
