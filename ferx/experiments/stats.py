"""How far a row is from the reference row, with the noise of seeds and of the test set.

`paired_bootstrap` is a two-level (hierarchical) bootstrap of the difference in accuracy:
each replicate resamples the test faces with replacement, the same faces for both rows (the
comparison is paired: both rows classify the same faces), and, within each row, its seeds
with replacement; the row's accuracy in a replicate is its mean over the drawn seeds and
faces. The 95% interval is the 2.5th to 97.5th percentile of the replicates' differences
(Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13 and 16; resampling
both the data and the seeds as Bouthillier et al. 2021, "Accounting for Variance in Machine
Learning Benchmarks", recommend). With one seed a row's interval holds the test set's noise
only; with few seeds the seed part is, if anything, too narrow (a bootstrap of n values
has (n-1)/n of their variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REPLICATES = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class Difference:
    mean: float  # row - reference, mean over seeds and faces
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 0.0 <= self.high


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _seed_weights(rng: np.random.Generator, n_seeds: int, n: int) -> np.ndarray:
    # drawing n_seeds seeds with replacement = multinomial counts; as weights summing to 1
    return rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n) / n_seeds


def paired_bootstrap(
    row: np.ndarray,
    reference: np.ndarray,
    replicates: int = REPLICATES,
    level: float = LEVEL,
    seed: int = 0,
) -> Difference:
    """row, reference: (seeds, faces) arrays of 1 (right) / 0 (wrong), the same faces in the
    same order. The difference in accuracy and its percentile interval."""
    row, reference = np.atleast_2d(row).astype(float), np.atleast_2d(reference).astype(float)
    if row.shape[1] != reference.shape[1] or row.shape[1] == 0:
        raise ValueError(f"not the same faces: {row.shape[1]} against {reference.shape[1]}")
    faces = row.shape[1]
    rng = np.random.default_rng(seed)
    diffs = np.empty(replicates)
    chunk = max(1, 2_000_000 // faces)  # replicates at a time: bounded memory
    for start in range(0, replicates, chunk):
        n = min(chunk, replicates - start)
        # per-face accuracy of each row under this replicate's seed draw: (n, faces)
        per_face = _seed_weights(rng, len(row), n) @ row
        per_face -= _seed_weights(rng, len(reference), n) @ reference
        picks = rng.integers(0, faces, size=(n, faces))
        diffs[start : start + n] = np.take_along_axis(per_face, picks, axis=1).mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return Difference(float(row.mean() - reference.mean()), float(low), float(high))


def correct_from_text(text: str) -> np.ndarray:
    """The evaluate stage's per-face record ("1" right, "0" wrong, in the split's order)."""
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def predicted_from_text(text: str) -> np.ndarray:
    """The evaluate stage's per-face predicted class ("0"-"6", in the split's order)."""
    return (np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")).astype(np.int64)


def _confusions(labels: np.ndarray, predicted: np.ndarray, picks: np.ndarray, k: int) -> np.ndarray:
    """(replicates, k, k) confusion counts of `predicted` on the faces each replicate picks."""
    n = len(picks)
    codes = labels[picks] * k + predicted[picks] + (np.arange(n) * k * k)[:, None]
    return np.bincount(codes.ravel(), minlength=n * k * k).reshape(n, k, k).astype(float)


def _scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """macro-F1 and per-class recall (index c) from (replicates, k, k) confusions; a class no
    face has and no face is given scores 0, as sklearn's zero_division=0."""
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    actual, given = confusion.sum(axis=2), confusion.sum(axis=1)
    f1 = np.divide(2 * tp, actual + given, out=np.zeros_like(tp), where=actual + given > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return {
        "macro_f1": f1.mean(axis=1),
        **{f"recall_{c}": recall[:, c] for c in range(tp.shape[1])},
    }


def paired_gain_bootstrap(
    ours: np.ndarray,
    theirs: np.ndarray,
    labels: np.ndarray,
    classes: int,
    replicates: int = REPLICATES,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Difference]:
    """ours, theirs: (seeds, faces) predicted classes of two models that classified the same
    faces in the same runs (seed i of one beside seed i of the other: improve's model and its
    own baseline); labels: (faces,). The difference in macro-F1 and in each class's recall
    (keys "macro_f1", "recall_<c>"), mean over seeds, with percentile intervals of a paired
    bootstrap that draws the faces (the same for both) and the seeds (the same pairs),
    recomputing each replicate's scores from its predictions."""
    ours, theirs = np.atleast_2d(ours), np.atleast_2d(theirs)
    if ours.shape != theirs.shape or ours.shape[1] != len(labels) or not len(labels):
        raise ValueError(
            f"not the same runs and faces: {ours.shape}, {theirs.shape}, {len(labels)}"
        )
    for array in (ours, theirs, labels):
        if array.min() < 0 or array.max() >= classes:
            raise ValueError(f"classes must lie in 0..{classes - 1}")
    seeds, faces = ours.shape
    rng = np.random.default_rng(seed)
    every = np.arange(faces)[None, :]
    point = {
        key: float(np.mean([_scores(_confusions(labels, o, every, classes))[key][0]
                            - _scores(_confusions(labels, t, every, classes))[key][0]
                            for o, t in zip(ours, theirs, strict=True)]))
        for key in ["macro_f1", *(f"recall_{c}" for c in range(classes))]
    }  # fmt: skip
    draws: dict[str, list[np.ndarray]] = {key: [] for key in point}
    chunk = max(1, 1_000_000 // faces)
    for start in range(0, replicates, chunk):
        n = min(chunk, replicates - start)
        picks = rng.integers(0, faces, size=(n, faces))
        weights = _seed_weights(rng, seeds, n)  # (n, seeds): the pairs drawn, as weights
        total = {key: np.zeros(n) for key in point}
        for s in range(seeds):
            a = _scores(_confusions(labels, ours[s], picks, classes))
            b = _scores(_confusions(labels, theirs[s], picks, classes))
            for key in point:
                total[key] += weights[:, s] * (a[key] - b[key])
        for key in point:
            draws[key].append(total[key])
    tail = (1 - level) / 2
    out = {}
    for key, mean in point.items():
        low, high = np.quantile(np.concatenate(draws[key]), [tail, 1 - tail])
        out[key] = Difference(mean, float(low), float(high))
    return out
