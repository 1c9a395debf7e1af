"""One evaluation for every model and split: metrics, per-class report, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ferx.atomic import write_json
from ferx.labels import CLASS_NAMES, NUM_CLASSES
from ferx.metrics import summary_metrics


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Summary metrics plus per-class precision, recall, F1 and support, by class name."""
    y_true, y_pred = labels.numpy(), logits.argmax(dim=1).numpy()
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(NUM_CLASSES), zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(CLASS_NAMES)
    }
    return {**summary_metrics(logits, labels), "per_class": per_class}


def correct_text(logits: torch.Tensor, labels: torch.Tensor) -> str:
    """Which faces the model got right, "1" or "0" per face in the split's order: what a paired
    comparison of two models on the same faces needs (ferx.experiments.stats), in 1 byte a face."""
    right = (logits.argmax(dim=1) == labels).numpy()
    return (right.astype(np.uint8) + ord("0")).tobytes().decode()


def predicted_text(logits: torch.Tensor) -> str:
    """The predicted class of each face, one digit (0-6, CLASS_NAMES order) a face in the
    split's order: with the split's labels, what a paired bootstrap of macro-F1 and per-class
    recall needs (ferx.experiments.stats), with no pixel of any face."""
    return (logits.argmax(dim=1).numpy().astype(np.uint8) + ord("0")).tobytes().decode()


def confusion(labels: torch.Tensor, logits: torch.Tensor) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return confusion_matrix(
        labels.numpy(), logits.argmax(dim=1).numpy(), labels=np.arange(NUM_CLASSES)
    )


def confusion_records(labels: torch.Tensor, logits: torch.Tensor) -> list[dict[str, str]]:
    """One {actual, predicted} record per image: the input DVC's `confusion` template reads."""
    names = np.array(CLASS_NAMES)
    actual, predicted = names[labels.numpy()], names[logits.argmax(dim=1).numpy()]
    return [{"actual": a, "predicted": p} for a, p in zip(actual, predicted, strict=True)]


def write_confusion_json(path: str | Path, labels: torch.Tensor, logits: torch.Tensor) -> None:
    write_json(path, confusion_records(labels, logits))


def plot_confusion(counts: np.ndarray, path: str | Path, title: str) -> None:
    """Row-normalised heat map with the counts written in, class names on both axes."""
    from ferx.plots import plt, save_figure

    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.6, 5.6))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(NUM_CLASSES):
        for j in range(NUM_CLASSES):
            color = "white" if share[i, j] > 0.55 else "black"
            ax.text(
                j,
                i,
                f"{share[i, j]:.2f}\n({counts[i, j]})",
                ha="center",
                va="center",
                fontsize=7,
                color=color,
            )
    ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=45, ha="right")
    ax.set_yticks(range(NUM_CLASSES), CLASS_NAMES)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, label="share of the true class (row-normalised)")
    save_figure(fig, path)
