"""PNG figures for people who just open the plots/ folder (DVC plots cover the rest)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ferx import paths
from ferx.atomic import atomic_path

SERIES = (("train", "train (augmented)"), ("public", "PublicTest"), ("private", "PrivateTest"))
CURVE_LABELS = {"loss": "cross-entropy loss", "accuracy": "accuracy"}  # paths.CURVES


def save_figure(fig, path: str | Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: list[dict], out_dir: str | Path, title: str, best_epoch: int) -> None:
    """A figure per paths.CURVES metric: train vs PublicTest vs PrivateTest per epoch."""
    epochs = [row["epoch"] for row in history]
    # train loss is plain cross-entropy on the augmented batches (no label smoothing, no class
    # weights), the same quantity as the evaluations' loss, so the curves share one axis
    for metric in paths.CURVES:
        label = CURVE_LABELS[metric]
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for key, name in SERIES:
            ax.plot(epochs, [row[f"{key}/{metric}"] for row in history], marker=".", label=name)
        ax.axvline(
            best_epoch, color="grey", linestyle=":", label=f"kept (best PublicTest): {best_epoch}"
        )
        ax.set(xlabel="epoch", ylabel=label, title=f"{title}: {label}")
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, paths.curve_figure(out_dir, metric))
