"""The ablation's two accuracy-vs-cost frontiers, side by side: PublicTest, the split to
choose by (with its Pareto front), and PrivateTest, reported and choosing nothing (with the
published results, which are test-set figures). Error bars: standard deviation over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferx.analysis.cost_figure import CostPoint
from ferx.experiments.spec import Spec

SPLITS = (("public", "PublicTest"), ("private", "PrivateTest"))
# Published FER2013 results, for orientation only: how each was selected matters as much as
# the number. Only the first has a cost we can measure (it is the paper's network).
REFERENCES = (
    {
        "label": "mini-Xception paper, 66% (selected on its test data)",
        "accuracy": 0.66,
        "gflops": 0.00585,
    },
    {"label": "Tang 2013, 71.2% (challenge winner; cost not measured)", "accuracy": 0.712},
    {
        "label": "VGG, Khaireddin & Chen 2021, 73.3% (ten-crop, tuned on PrivateTest)",
        "accuracy": 0.733,
    },
)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower) and accuracy (higher)."""
    front, best = [], -float("inf")
    for gflops, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append((gflops, accuracy))
            best = accuracy
    return front


def frontier_points(records: list[dict[str, Any]], split: str) -> list[CostPoint]:
    """One point per row with results on `split` (mean over seeds, std as the error bar when
    there are several), labelled by what the row switches on; TTA beside it where evaluated.
    A row the table does not compare with row 0 (another resolved precision) is left out."""
    points = []
    for r in records:
        figure, gflops = r.get(f"{split}_accuracy"), r.get("gflops")
        if figure is None or gflops is None or r.get("not_compared"):
            continue  # no results, or trained in another precision than row 0 (table.py)
        several = len(r["seeds"]) > 1
        tta = r.get(f"{split}_tta_accuracy") if "tta_gflops" in r else None
        points.append(
            CostPoint(
                label=f"{r['row']} {r['label']}",
                gflops=gflops["mean"],
                accuracy=100 * figure["mean"],
                error=100 * figure["std"] if several else None,
                tta_gflops=r["tta_gflops"] if tta else None,
                tta_accuracy=100 * tta["mean"] if tta else None,
                tta_error=100 * tta["std"] if tta and several else None,
                tta_label=f"{r['row']} + {r.get('tta')} TTA" if tta else None,
            )
        )
    return points


RED = {"textcoords": "offset points", "fontsize": 7, "color": "tab:red"}


def _references(ax) -> None:
    for ref in REFERENCES:
        y = 100 * ref["accuracy"]
        if "gflops" in ref:
            ax.scatter(ref["gflops"], y, s=60, facecolors="none", edgecolors="tab:red", zorder=3)
            ax.annotate(ref["label"], (ref["gflops"], y), xytext=(5, -10), **RED)
        else:  # no measured cost: a level line, not a point placed at a guessed x
            ax.axhline(y, color="tab:red", lw=0.8, ls=":")
            ax.annotate(ref["label"], (0.01, y), xycoords=("axes fraction", "data"),
                        xytext=(0, 2), **RED)  # fmt: skip


def plot_frontiers(spec: Spec, records: list[dict[str, Any]], path: Path) -> None:
    from ferx.analysis.cost_figure import plot_cost_points
    from ferx.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
    sources = sorted({str(run.get("source")) for r in records for run in r["runs"]})
    seeds = max((len(r["seeds"]) for r in records), default=0)
    for ax, (split, title) in zip(axes, SPLITS, strict=True):
        points = frontier_points(records, split)
        plot_cost_points(ax, points)
        ax.margins(x=0.4, y=0.15)
        if split == "public":
            singles = [(p.gflops, p.accuracy) for p in points]
            ttas = [(p.tta_gflops, p.tta_accuracy) for p in points if p.tta_gflops is not None]
            front = pareto(singles + ttas)
            if front:
                ax.plot(*zip(*front, strict=True), color="grey", lw=1, label="Pareto front")
                ax.legend(fontsize=8, loc="lower right")
            role = "choose here"
        else:
            _references(ax)
            top = max([100 * ref["accuracy"] for ref in REFERENCES] + [p.accuracy for p in points])
            ax.set_ylim(top=top + 3)  # room for the published level lines' labels
            role = "reported, chooses nothing; red: published"
        ax.set(
            xlabel="GFLOPs per 48x48 face (fvcore; log scale); hollow: with TTA",
            ylabel=f"{title} accuracy (%)",
            title=f"{title}: {role}",
        )
    bars = f"mean of {seeds} seeds, bars: ± 1 std" if seeds > 1 else "one seed"
    fig.suptitle(
        f"Ablation {spec.name} ({spec.design}; {', '.join(sources) or 'no'} data; {bars})",
        fontsize=11,
    )
    save_figure(fig, path)
