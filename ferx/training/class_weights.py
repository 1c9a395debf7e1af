"""Class weights for the improve stage's weighted cross-entropy."""

from __future__ import annotations

import numpy as np


def class_weights(counts: np.ndarray, scheme: str, beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights, normalised to sum to the number of classes (mean 1).

    balanced:  inverse class frequency, w_c proportional to 1 / n_c.
    effective: inverse effective number of samples (Cui et al., CVPR 2019),
               w_c proportional to (1 - beta) / (1 - beta ** n_c).
    none:      all ones.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if (counts <= 0).any():
        raise ValueError(
            f"every class needs at least one training image, counts: {counts.tolist()}"
        )
    if scheme == "none":
        raw = np.ones_like(counts)
    elif scheme == "balanced":
        raw = 1.0 / counts
    elif scheme == "effective":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        raw = (1.0 - beta) / (1.0 - np.power(beta, counts))
    else:
        raise ValueError(f"unknown weighting {scheme!r}; expected balanced, effective or none")
    return raw * len(counts) / raw.sum()
