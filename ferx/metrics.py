"""Classification metrics from logits, with sklearn doing the arithmetic."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, f1_score

from ferx.labels import NUM_CLASSES


def summary_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """accuracy, mean cross-entropy, macro-F1 and balanced accuracy of one split."""
    y_true = labels.numpy()
    y_pred = logits.argmax(dim=1).numpy()
    present = np.arange(NUM_CLASSES)
    return {
        "loss": float(F.cross_entropy(logits, labels)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }
