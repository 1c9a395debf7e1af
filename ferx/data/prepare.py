"""The prepare stage's work: FER2013 (or the synthetic stand-in) to npz splits."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ferx.atomic import write_atomic
from ferx.data.archives import FerDataError, read_file_bytes, unpack_csv
from ferx.data.fercsv import USAGES, FerTable, parse_fer_csv
from ferx.data.notes import is_note, is_pointer
from ferx.data.synthetic import make_synthetic_fer
from ferx.labels import CLASS_NAMES, SPLITS
from ferx.params import PrepareParams

SYNTHETIC_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! NO REAL DATA: {reason}.
!! Running on the SYNTHETIC stand-in ({n} drawn faces, seed {seed}); every metric is labelled
!! `source: synthetic` and says nothing about FER2013.
!! For real results put FER2013 in {raw}/ (fer2013.csv, .csv.gz, Kaggle's fer2013.tar.gz or the
!! ICML icml_face_data.csv; any name) and run `dvc repro` again.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


@dataclass(frozen=True)
class Source:
    kind: str  # "real" or "synthetic"
    path: str
    sha256: str | None


def find_raw_file(raw: str | Path) -> Path | None:
    """The FER2013 file: `raw` itself if it is a file, else the one data file in the folder
    `raw` (any name; README, .md/.txt notes, .dvc files and dotfiles are not data). None when
    there is none; two or more is an error naming them, since guessing could mix datasets."""
    raw = Path(raw)
    if raw.is_file():
        return raw
    if not raw.is_dir():
        return None
    candidates = sorted(
        p for p in raw.iterdir() if p.is_file() and not is_note(p.name) and not is_pointer(p.name)
    )
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise FerDataError(
            f"{raw}: {len(candidates)} data files found ({names}); keep exactly one FER2013 "
            "file there (or point prepare.raw at the one to use)"
        )
    return candidates[0] if candidates else None


def experiment_origin(cwd: Path) -> Path | None:
    """The repository a DVC queued or temporary experiment was started from, when `cwd` is
    one of DVC's experiment workspaces (<repo>/.dvc/tmp/exps/...), else None."""
    parts = cwd.resolve().parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return None


def dvc_pointers_without_data(raw: Path) -> list[tuple[Path, Path]]:
    """(pointer, the file it tracks) for each `.dvc` file at or in `raw` whose data is not
    there: a clone or an experiment workspace that did not `dvc pull` or `dvc checkout`."""
    pointers = [raw.with_name(raw.name + ".dvc")]
    if raw.is_dir():
        pointers += sorted(raw.glob("*.dvc"))
    missing = []
    for pointer in pointers:
        if not pointer.is_file():
            continue
        try:
            outs = (yaml.safe_load(pointer.read_text()) or {}).get("outs") or []
        except (yaml.YAMLError, OSError, AttributeError) as exc:
            raise FerDataError(f"{pointer}: not a readable DVC pointer ({exc})") from None
        for out in outs:
            tracked = pointer.parent / str((out or {}).get("path", ""))
            if isinstance(out, dict) and out.get("path") and not tracked.exists():
                missing.append((pointer, tracked))
    return missing


def _missing_real_data(raw: Path, params: PrepareParams) -> str | None:
    """Why running on synthetic data here would be a silent lie, or None if it would not."""
    for pointer, tracked in dvc_pointers_without_data(raw):
        # the data is tracked, so a run here must use it: the stand-in would pass for it in
        # every record that fingerprints the pointer (ferx-ablate's run identity)
        return (
            f"{pointer}: tracks {tracked}, which is not here: run `dvc pull` (or `dvc checkout`) "
            "to fetch it, or remove the pointer to use the synthetic stand-in"
        )
    if params.source == "real":
        return (
            f"{raw}: no FER2013 file, and prepare.source is 'real' (put the file there, or "
            "set prepare.source: auto to allow the synthetic stand-in)"
        )
    origin = experiment_origin(Path.cwd())
    if origin is not None and find_raw_file(origin / raw) is not None:
        return (
            f"{raw}: FER2013 is in {origin / raw} but not in this DVC experiment's workspace, "
            "because DVC copies only what git or DVC tracks into queued and temporary "
            f"experiments. Track it once: `dvc add {raw}/<file>` and commit the .dvc file "
            "(README: The data), or queue with `dvc exp run --queue -C data/raw ...`"
        )
    return None


def load_source(params: PrepareParams) -> tuple[FerTable, Source]:
    """Parse the FER2013 file in params.raw, or draw the synthetic set when there is none
    (refused where that would pass synthetic results off as real: see prepare.source)."""
    raw = Path(params.raw)
    found = None if params.source == "synthetic" else find_raw_file(raw)
    if found is None:
        problem = None if params.source == "synthetic" else _missing_real_data(raw, params)
        if problem:
            raise FerDataError(problem)
        syn = params.synthetic
        reason = (
            "prepare.source is 'synthetic'"
            if params.source == "synthetic"
            else f"no FER2013 file in {raw}"
        )
        print(
            SYNTHETIC_BANNER.format(reason=reason, raw=raw, n=syn.n_samples, seed=syn.seed),
            file=sys.stderr,
        )
        return make_synthetic_fer(syn.n_samples, syn.seed), Source("synthetic", str(raw), None)
    raw_bytes = read_file_bytes(found)
    with ThreadPoolExecutor(1) as pool:  # hashing runs beside parsing (both release the GIL)
        digest = pool.submit(lambda: hashlib.sha256(raw_bytes).hexdigest())
        table = parse_fer_csv(unpack_csv(raw_bytes, found), found)
        return table, Source("real", str(found), digest.result())


def write_splits(table: FerTable, out_dir: str | Path) -> dict[str, Path]:
    """One npz per split: x uint8 (N, 48, 48), y int64 (N), rows in file order."""
    paths = {}
    for usage, split in SPLITS.items():
        x, y = table.split(usage)
        path = Path(out_dir) / f"{split}.npz"
        write_atomic(path, lambda tmp, x=x, y=y: _save_npz(tmp, x, y), suffix=".npz")
        paths[split] = path
    return paths


def _save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    # np.savez stamps each member with the current time, so the same arrays would hash
    # differently on every run and DVC would retrain; a fixed timestamp keeps bytes identical.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in (("x", x), ("y", y)):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def summarise(table: FerTable, source: Source) -> dict:
    """The prepare metrics: source, input hash and per-split class counts."""
    counts = {}
    for index, usage in enumerate(USAGES):
        per_class = np.bincount(table.labels[table.usage == index], minlength=len(CLASS_NAMES))
        counts[SPLITS[usage]] = {
            "total": int(per_class.sum()),
            **{n: int(c) for n, c in zip(CLASS_NAMES, per_class, strict=True)},
        }
    return {
        "source": source.kind,
        "input": source.path,
        "sha256": source.sha256,
        "rows": len(table.labels),
        "counts": counts,
    }
