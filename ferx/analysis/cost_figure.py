"""The accuracy-vs-GFLOPs figure's drawing, shared by the cost stage (one point per model) and
the ablation's frontiers (one per row, with seeds' error bars). Its own module: the stages that
train and evaluate do not read it, so a change to the figure reruns only the cost stage."""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class CostPoint:
    """One model on an accuracy-vs-GFLOPs figure: a filled dot at its single-view cost and,
    where it was evaluated with TTA, a hollow one at n_views times the GFLOPs, joined to it.
    Accuracies in percent; `error` (e.g. the standard deviation over seeds) is drawn as a bar."""

    label: str
    gflops: float
    accuracy: float
    error: float | None = None
    tta_gflops: float | None = None
    tta_accuracy: float | None = None
    tta_error: float | None = None
    tta_label: str | None = None
    legend: str | None = None


def label_offsets(places: list[tuple[float, float]], gap: float) -> list[float]:
    """Vertical label offsets (points) so that labels of dots at the same cost and nearly the
    same accuracy (closer than `gap` accuracy points) are stacked, not printed over each other."""
    offsets = [0.0] * len(places)
    order = sorted(range(len(places)), key=lambda i: places[i])
    for before, i in itertools.pairwise(order):
        if places[i][0] == places[before][0] and places[i][1] - places[before][1] < gap:
            offsets[i] = offsets[before] + 9
    return offsets


def plot_cost_points(ax, points: list[CostPoint]) -> None:
    """Draw the points on a log-GFLOPs axis: the accuracy-vs-cost figure of the cost stage and
    each panel of the ablation's frontiers."""
    places = [(p.gflops, p.accuracy) for p in points]
    places += [(p.tta_gflops, p.tta_accuracy) for p in points if p.tta_gflops is not None]
    span = max((y for _, y in places), default=1) - min((y for _, y in places), default=0)
    offsets = iter(label_offsets(places, 0.04 * span + 0.3))
    single = [next(offsets) for _ in points]
    for point, dy in zip(points, single, strict=True):
        drawn = ax.errorbar(
            point.gflops,
            point.accuracy,
            yerr=point.error,
            fmt="o",
            ms=7,
            capsize=3,
            zorder=3,
            label=point.legend,
        )
        color = drawn[0].get_color()
        ax.annotate(
            point.label,
            (point.gflops, point.accuracy),
            textcoords="offset points",
            xytext=(7, dy + 4),
            fontsize=7,
        )
        if point.tta_gflops is None:
            continue
        tx, ty = point.tta_gflops, point.tta_accuracy
        ax.plot([point.gflops, tx], [point.accuracy, ty], color=color, lw=1, ls=":")
        ax.errorbar(tx, ty, yerr=point.tta_error, fmt="o", ms=7, mfc="none", mec=color,
                    ecolor=color, capsize=3, zorder=3)  # fmt: skip
        # TTA points sit at 2-10x the cost of their row: their labels go below, the rows' above
        ax.annotate(
            point.tta_label or f"{point.label} + TTA",
            (tx, ty),
            textcoords="offset points",
            xytext=(7, next(offsets) - 12),
            fontsize=7,
            color=color,
        )
    ax.set_xscale("log")
    # costs often span less than a decade: label 1, 2 and 5 times powers of ten, in plain
    # numbers, and leave the minor ticks unlabelled (matplotlib would label each of them)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
