"""Post-hoc logit adjustment (Menon et al. 2021): logits - tau * log prior, tau chosen on
PublicTest, written into the model's head biases.

Subtracting tau * log prior lowers the frequent classes' logits against the rare ones; tau 0
is the model as it was. Every network's head ends in a bias followed only by linear maps
(global average pooling, flattening), so a per-class offset added to those biases adds the
same offset to the logits: the model file, its ONNX export, evaluate, ferx-predict and video
all carry the adjustment with no code of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ferx.labels import EVAL_SPLITS
from ferx.metrics import summary_metrics

TAU_GRID = tuple(round(0.05 * i, 2) for i in range(61))  # 0, 0.05, ..., 3


@dataclass(frozen=True)
class TauChoice:
    tau: float
    scanned: list[dict[str, float]]  # per tau: PublicTest accuracy and macro-F1

    def at(self, tau: float) -> dict[str, float]:
        return next(row for row in self.scanned if row["tau"] == tau)


def adjusted(logits: torch.Tensor, log_prior: torch.Tensor, tau: float) -> torch.Tensor:
    return logits - tau * log_prior


def choose_tau(
    logits: torch.Tensor,
    labels: torch.Tensor,
    log_prior: torch.Tensor,
    max_accuracy_drop: float,
    grid: tuple[float, ...] = TAU_GRID,
) -> TauChoice:
    """The tau of `grid` with the best macro-F1 on (logits, labels), PublicTest's, among those
    whose accuracy is at most `max_accuracy_drop` below tau 0's; the smallest on a tie, so
    tau 0 (nothing changed) stays unless some tau does better."""
    if 0.0 not in grid:
        raise ValueError("the tau grid must hold 0 (the model as it is)")
    scanned = []
    for tau in sorted(grid):
        found = summary_metrics(adjusted(logits, log_prior, tau), labels)
        scanned.append({"tau": tau, "accuracy": found["accuracy"], "macro_f1": found["macro_f1"]})
    floor = scanned[0]["accuracy"] - max_accuracy_drop - 1e-12
    allowed = [row for row in scanned if row["accuracy"] >= floor]
    best = max(allowed, key=lambda row: (row["macro_f1"], -row["tau"]))
    return TauChoice(best["tau"], scanned)


def add_to_head(model: torch.nn.Module, offset: torch.Tensor) -> None:
    """Add a per-class offset to the logits the model computes, through its head biases."""
    bias = model.head.bias
    with torch.no_grad():
        bias.add_(offset.to(bias.device, bias.dtype))


@dataclass(frozen=True)
class LogitAdjust:
    """improve.logit_adjust: tuned, and what it needs."""

    log_prior: torch.Tensor  # log of the Training class frequencies
    max_accuracy_drop: float  # improve.adjust_max_accuracy_drop


def adjust_logits(model, splits, adjust: LogitAdjust, runtime, name: str) -> dict[str, Any]:
    """Choose tau on PublicTest for the model's logits, write -tau * log prior into its head,
    and score the adjusted model: {"public": ..., "private": ... (as the loop's metrics),
    "tau", "max_accuracy_drop", "public_before" (tau 0), "scanned"}."""
    from ferx.models.inference import predict_logits

    def logits_on(split: str) -> torch.Tensor:
        return predict_logits(
            model, splits[split].x, runtime.eval_batch_size, None, runtime.memory_format
        )

    public = EVAL_SPLITS["public"]
    choice = choose_tau(
        logits_on(public), splits[public].y, adjust.log_prior, adjust.max_accuracy_drop
    )
    add_to_head(model, -choice.tau * adjust.log_prior)
    scored = {short: summary_metrics(logits_on(split), splits[split].y)
              for short, split in EVAL_SPLITS.items()}  # fmt: skip
    before, after = choice.at(0.0), choice.at(choice.tau)
    print(
        f"{name}: logit adjustment tau {choice.tau:g} (chosen on PublicTest macro-F1, accuracy "
        f"at most {adjust.max_accuracy_drop:g} below tau 0's): public macro-F1 "
        f"{before['macro_f1']:.4f} -> {after['macro_f1']:.4f}, accuracy "
        f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}"
    )
    return {
        **scored,
        "tau": choice.tau,
        "max_accuracy_drop": adjust.max_accuracy_drop,
        "public_before": before,
        "scanned": choice.scanned,
    }
