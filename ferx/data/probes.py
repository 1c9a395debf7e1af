"""The probes stage's work: the PrivateTest faces explain shows (data/probes/test, test2).

A stage of its own, after prepare: drawing other probe faces (prepare.probes) then reruns only
this stage and explain, never prepare, a training or an ablation run (whose identity is what
its figures depend on: ferx.experiments.identity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ferx.atomic import atomic_dir
from ferx.labels import CLASS_NAMES, PROBE_SETS
from ferx.params import PrepareParams


def choose_probes(
    x: np.ndarray, y: np.ndarray, classes: list[str], seed: int, salt: int = 0
) -> dict[str, np.ndarray]:
    """One face per named class of the split (x, y), drawn with a seeded generator."""
    rng = np.random.default_rng([seed, salt])
    chosen = {}
    for name in classes:
        rows = np.flatnonzero(y == CLASS_NAMES.index(name))
        if rows.size == 0:
            raise ValueError(f"probe class {name!r} has no PrivateTest image")
        chosen[name] = x[rng.choice(rows)]
    return chosen


def write_probes(x: np.ndarray, y: np.ndarray, params: PrepareParams) -> dict[str, list[str]]:
    """<probes_dir>/test and test2: one <label>.png per class named in params.probes, drawn
    from the PrivateTest split (x, y)."""
    written = {}
    for salt, folder in enumerate(PROBE_SETS):
        classes = getattr(params.probes, folder)
        with atomic_dir(Path(params.probes_dir) / folder) as tmp:
            for name, image in choose_probes(x, y, classes, params.probes.seed, salt).items():
                Image.fromarray(image, mode="L").save(tmp / f"{name}.png")
        written[folder] = sorted(f"{name}.png" for name in classes)
    return written
