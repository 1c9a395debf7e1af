"""Reading what prepare wrote: the npz splits and the data source of a run (numpy only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one prepared split, checking what the later stages rely on."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `dvc repro prepare` first")
    with np.load(path, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{path}: expected x uint8 (N, H, W) and y (N), got {x.shape}, {y.shape}")
    return x, y.astype(np.int64)


# Beside the splits, what they were made from: only what changes a result downstream, so a
# renamed data file or new probe faces leave it (and every training) as it was.
SOURCE_FILE = "source.json"


def data_source(prepared_dir: str | Path) -> str:
    """'real' or 'synthetic', as prepare recorded it, so every metric says what it measured."""
    try:
        return json.loads((Path(prepared_dir) / SOURCE_FILE).read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"
