"""Post-hoc logit adjustment, written into the model's head biases: `tuned` (Menon et al.
2021) subtracts tau * log prior, tau chosen on PublicTest; `biases` adds one offset per class,
the seven chosen together on PublicTest (a per-class decision threshold, in logit units).

Subtracting tau * log prior lowers the frequent classes' logits against the rare ones; tau 0
is the model as it was. Every network's head ends in a bias followed only by linear maps
(global average pooling, flattening), so a per-class offset added to those biases adds the
same offset to the logits: the model file, its ONNX export, evaluate, ferx-predict and video
all carry the adjustment with no code of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ferx.labels import CLASS_NAMES, EVAL_SPLITS, NUM_CLASSES
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


OFFSET_GRID = tuple(round(0.1 * i, 1) for i in range(-20, 21))  # -2, -1.9, ..., 2
OFFSET_ROUNDS = 3


@dataclass(frozen=True)
class OffsetChoice:
    offsets: list[float]  # per class, in CLASS_NAMES order
    before: dict[str, float]  # PublicTest accuracy and macro-F1 with no offsets
    after: dict[str, float]  # the same with the chosen offsets
    rounds: int  # passes over the classes that ran
    converged: bool = True  # the last pass changed nothing (else `rounds` ran out)
    at_bound: bool = False  # an offset is the grid's largest in size: the grid may have cut it


def _accuracy_and_macro_f1(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """As summary_metrics computes them (macro-F1 over all classes, 0 where undefined)."""
    counts = np.bincount(labels * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2)
    confusion = counts.reshape(NUM_CLASSES, NUM_CLASSES)
    hits = np.diag(confusion)
    denominator = confusion.sum(0) + confusion.sum(1)  # 2TP + FP + FN
    f1 = np.divide(2 * hits, denominator, out=np.zeros(NUM_CLASSES), where=denominator > 0)
    return float(hits.sum() / len(labels)), float(f1.mean())


def choose_offsets(
    logits: torch.Tensor,
    labels: torch.Tensor,
    max_accuracy_drop: float,
    grid: tuple[float, ...] = OFFSET_GRID,
    rounds: int = OFFSET_ROUNDS,
) -> OffsetChoice:
    """Per-class logit offsets with the best macro-F1 on (logits, labels), PublicTest's, among
    those whose accuracy is at most `max_accuracy_drop` below the model's as it is: coordinate
    ascent, each class in turn taking the value of `grid` best for macro-F1 with the others
    held, for `rounds` passes or until a pass changes nothing. A class keeps its value unless
    another does strictly better, so all zeros (the model as it is) stays when nothing helps;
    within a class's scan values are tried smallest in size first, so of values that score
    alike the smallest is taken (the least change to faces nothing chose on); a later pass
    moves it only for a strict gain."""
    if 0.0 not in grid:
        raise ValueError("the offset grid must hold 0 (the model as it is)")
    grid = tuple(sorted(grid, key=lambda v: (abs(v), v)))
    # float32 and added to the logits, as the head's biases will add them
    scores, truth = logits.float().numpy(), labels.numpy()
    offsets = np.zeros(scores.shape[1], dtype=np.float32)

    def score(candidate: np.ndarray) -> tuple[float, float]:
        return _accuracy_and_macro_f1((scores + candidate).argmax(1), truth)

    start = score(offsets)
    floor = start[0] - max_accuracy_drop - 1e-12
    best_f1, passes, changed = start[1], 0, True
    while passes < rounds and changed:
        passes += 1
        changed = False
        for c in range(len(offsets)):
            for value in grid:
                candidate = offsets.copy()
                candidate[c] = value
                accuracy, f1 = score(candidate)
                if accuracy >= floor and f1 > best_f1 + 1e-12:
                    offsets, best_f1, changed = candidate, f1, True
    end = score(offsets)
    return OffsetChoice(
        [round(float(v), 4) for v in offsets],
        {"accuracy": start[0], "macro_f1": start[1]},
        {"accuracy": end[0], "macro_f1": end[1]},
        passes,
        converged=not changed,
        at_bound=bool(np.any(np.abs(offsets) >= max(abs(v) for v in grid) - 1e-6)),
    )


CROSS_FIT_FOLDS = 2


def folds_of(labels: np.ndarray, folds: int = CROSS_FIT_FOLDS) -> np.ndarray:
    """Each face's fold: within each class the faces, in the split's order, take the folds in
    turn, so every fold holds each class's faces in the same proportion (to one face)."""
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        fold[where] = np.arange(len(where)) % folds
    return fold


# (logits, labels) of the faces it may look at -> the per-class offset to add to the logits
Chooser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_fitted(logits: torch.Tensor, labels: torch.Tensor, choose: Chooser) -> dict[str, Any]:
    """What an adjustment chosen on PublicTest is worth on faces nothing chose on: the split's
    faces in folds (`folds_of`), each fold adjusted by what `choose` finds on the others, then
    scored together. The adjustment the model carries is chosen on every face, so its own
    PublicTest figures are in-sample (optimistic); these are not (if anything pessimistic:
    each choice saw half the faces)."""
    truth = labels.numpy()
    folds = folds_of(truth)
    predicted = np.empty(len(truth), dtype=np.int64)
    chosen = []
    for k in range(CROSS_FIT_FOLDS):
        held = torch.from_numpy(folds == k)
        offset = choose(logits[~held], labels[~held]).float()
        predicted[held.numpy()] = (logits[held].float() + offset).argmax(1).numpy()
        chosen.append([round(float(v), 4) for v in offset])
    accuracy, macro_f1 = _accuracy_and_macro_f1(predicted, truth)
    recall = {
        name: float((predicted[truth == c] == c).mean()) if (truth == c).any() else 0.0
        for c, name in enumerate(CLASS_NAMES)
    }
    return {
        "folds": CROSS_FIT_FOLDS,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "recall": recall,
        "offsets_per_fold": chosen,
    }


def add_to_head(model: torch.nn.Module, offset: torch.Tensor) -> None:
    """Add a per-class offset to the logits the model computes, through its head biases."""
    bias = model.head.bias
    with torch.no_grad():
        bias.add_(offset.to(bias.device, bias.dtype))


@dataclass(frozen=True)
class LogitAdjust:
    """improve.logit_adjust (tuned or biases), and what it needs."""

    log_prior: torch.Tensor  # log of the Training class frequencies
    max_accuracy_drop: float  # improve.adjust_max_accuracy_drop
    kind: str = "tuned"  # tuned: -tau * log prior; biases: one offset per class


def adjust_logits(model, splits, adjust: LogitAdjust, runtime, name: str) -> dict[str, Any]:
    """Choose the adjustment on PublicTest for the model's logits, write it into its head, and
    score the adjusted model: {"public": ..., "private": ... (as the loop's metrics), "kind",
    "tau" (tuned; 0 for biases), "offsets" (biases: per class), "max_accuracy_drop",
    "public_before" (the model as it was), "public_after" (in-sample), "public_cross_fitted"
    (out of sample: `cross_fitted`), and tuned's "scanned"}."""
    from ferx.models.inference import predict_logits

    def logits_on(split: str) -> torch.Tensor:
        return predict_logits(
            model, splits[split].x, runtime.eval_batch_size, None, runtime.memory_format
        )

    public = EVAL_SPLITS["public"]
    public_logits, public_labels = logits_on(public), splits[public].y
    record: dict[str, Any] = {"kind": adjust.kind, "max_accuracy_drop": adjust.max_accuracy_drop}
    drop = adjust.max_accuracy_drop
    if adjust.kind == "biases":

        def choose(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return torch.tensor(choose_offsets(logits, labels, drop).offsets)

        offsets = choose_offsets(public_logits, public_labels, adjust.max_accuracy_drop)
        add_to_head(model, torch.tensor(offsets.offsets, dtype=torch.float32))
        before, after = offsets.before, offsets.after
        chosen = ", ".join(
            f"{n} {v:+.1f}" for n, v in zip(CLASS_NAMES, offsets.offsets, strict=True) if v
        )
        what = f"per-class offsets ({chosen or 'none'})"
        record |= {
            "tau": 0.0,
            "offsets": dict(zip(CLASS_NAMES, offsets.offsets, strict=True)),
            "rounds": offsets.rounds,
            "converged": offsets.converged,
            "at_bound": offsets.at_bound,
        }
    else:

        def choose(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return -choose_tau(logits, labels, adjust.log_prior, drop).tau * adjust.log_prior

        choice = choose_tau(
            public_logits, public_labels, adjust.log_prior, adjust.max_accuracy_drop
        )
        add_to_head(model, -choice.tau * adjust.log_prior)
        before, after = choice.at(0.0), choice.at(choice.tau)
        what = f"tau {choice.tau:g}"
        record |= {"tau": choice.tau, "at_bound": choice.tau == max(TAU_GRID)}
        record["scanned"] = choice.scanned
    # the chosen adjustment's worth on PublicTest faces it was not chosen on (ablation rules
    # read this, not the in-sample public_after)
    record["public_cross_fitted"] = cross_fitted(public_logits, public_labels, choose)
    scored = {short: summary_metrics(logits_on(split), splits[split].y)
              for short, split in EVAL_SPLITS.items()}  # fmt: skip
    print(
        f"{name}: logit adjustment {what} (chosen on PublicTest macro-F1, accuracy at most "
        f"{adjust.max_accuracy_drop:g} below the unadjusted model's): public macro-F1 "
        f"{before['macro_f1']:.4f} -> {after['macro_f1']:.4f}, accuracy "
        f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}"
    )
    return {**scored, **record, "public_before": before, "public_after": after}
