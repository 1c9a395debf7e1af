"""What the improve stage starts from, kept in a folder of its own (numpy/torch-free).

`improve.init: baseline`: a byte-for-byte copy of models/baseline.pt; `scratch`: a one-line
note. The improve stage depends on this folder, not on models/baseline.pt, so a new baseline
does not rerun a from-scratch improve: the improve_init stage reruns, writes the same note,
and DVC skips improve, whose dependencies are unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ferx import paths
from ferx.atomic import atomic_dir

BASELINE_COPY = "baseline.pt"  # improve.init: baseline
SCRATCH_NOTE = "scratch.txt"  # improve.init: scratch


def write_improve_init(
    init: str, baseline: Path = paths.TRAIN.model_path, folder: Path = paths.IMPROVE_INIT
) -> Path:
    """Replace `folder` (atomically) with what `init` starts improve from; the file written."""
    if init == "baseline" and not Path(baseline).exists():
        raise FileNotFoundError(f"{baseline}: not found; run `dvc repro train` first")
    with atomic_dir(folder) as tmp:
        if init == "baseline":
            shutil.copyfile(baseline, tmp / BASELINE_COPY)
        else:
            (tmp / SCRATCH_NOTE).write_text(f"improve.init: {init} (no starting weights)\n")
    return folder / (BASELINE_COPY if init == "baseline" else SCRATCH_NOTE)
