"""Finished runs kept in git beside the table: `ablation/<name>/runs.json`.

DVC keeps experiments as git refs (`refs/exps/`) of the clone they ran in; `git push` and
`git clone` leave them behind, and `dvc exp push` needs a remote both clones reach. So every
time ferx-ablate has results it also records each finished run in runs.json: the run's
resolved params, the fingerprint of the files its stages read (ferx.experiments.identity),
the experiment it came from (name, commits, params, summary metrics) and which PublicTest
faces it got right. A clone with the same stage inputs counts a record as a finished run,
exactly as it would count the experiment: a study can be finished in several sittings or
clones, and its table re-rendered from the repository alone. A record whose fingerprint is
not today's stands for nothing (it stays in the file: an older commit's inputs may match it).

The file only grows: runs are added, never dropped, so collecting part of a study (`--seeds`)
loses nothing another invocation recorded. Of two results for one run (the same params and
fingerprint: a record and an experiment, or two records) the newer stands, as between
experiments. Records count for the spec whose file holds them (`ablation/<name>/`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferx.atomic import write_json
from ferx.errors import UserError
from ferx.experiments.queue import Experiment

FILE = "runs.json"
MODELS = ("baseline", "improved")
FACE_FIELDS = {  # field -> the characters it may hold
    "correct": "01",
    "predicted": "0123456",
    "tta_correct": "01",
    "tta_predicted": "0123456",
}
VERSION = 1
_EXPERIMENT_KEYS = ("name", "rev", "baseline", "timestamp", "params", "metrics")


@dataclass(frozen=True)
class Record:
    params: dict[str, Any]  # the run's resolved params (spec.normalised: runtime left out)
    fingerprint: str  # of what its stages read (identity.fingerprint)
    experiment: Experiment
    public_correct: str | None  # the evaluate stage's "1"/"0" per PublicTest face (baseline)
    # model -> the evaluate stage's per-face strings on PublicTest (FACE_FIELDS: right or
    # wrong, the class predicted; single view and TTA), where the experiment has them
    faces: dict[str, dict[str, str]] | None = None
    # model -> split (public_test, private_test) -> class -> recall, from its evaluations
    recall: dict[str, dict[str, dict[str, float]]] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return canonical(self.params), self.fingerprint


def canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def newness(record: Record) -> tuple[str, str]:
    """The order in which results for one run supersede each other: the experiment's
    timestamp, then its commit (only so that a tie always ends the same way)."""
    return record.experiment.timestamp, record.experiment.rev


def _bad(path: Path, where: str, expected: str) -> UserError:
    return UserError(f"{path}: {where}: expected {expected} (a file ferx-ablate writes)")


def _record(path: Path, index: int, entry: Any) -> Record:
    where = f"runs[{index}]"
    if not isinstance(entry, dict):
        raise _bad(path, where, "a mapping")
    params, fingerprint = entry.get("params"), entry.get("fingerprint")
    experiment, correct = entry.get("experiment"), entry.get("public_correct")
    if not isinstance(params, dict):
        raise _bad(path, f"{where}.params", "a mapping")
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise _bad(path, f"{where}.fingerprint", "64 hex digits")
    if not isinstance(experiment, dict) or set(experiment) != set(_EXPERIMENT_KEYS):
        raise _bad(path, f"{where}.experiment", f"the keys {', '.join(_EXPERIMENT_KEYS)}")
    for key in ("name", "rev", "baseline", "timestamp"):
        if not isinstance(experiment[key], str):
            raise _bad(path, f"{where}.experiment.{key}", "a string")
    if not isinstance(experiment["params"], dict):
        raise _bad(path, f"{where}.experiment.params", "a mapping")
    if experiment["metrics"] is not None and not isinstance(experiment["metrics"], dict):
        raise _bad(path, f"{where}.experiment.metrics", "a mapping or null")
    if correct is not None and (not isinstance(correct, str) or set(correct) - {"0", "1"}):
        raise _bad(path, f"{where}.public_correct", 'a string of "0" and "1" or null')
    faces = entry.get("faces")
    if faces is not None and not _good_faces(faces):
        raise _bad(path, f"{where}.faces", f"null or {{model: {{field: digits}}}}, models {MODELS}")
    recall = entry.get("recall")
    if recall is not None and not _good_recall(recall):
        raise _bad(path, f"{where}.recall", "null or {model: {split: {class: 0..1}}}")
    return Record(params, fingerprint, Experiment(**experiment), correct, faces, recall)


def _good_recall(recall: Any) -> bool:
    return isinstance(recall, dict) and all(
        model in MODELS
        and isinstance(splits, dict)
        and all(
            isinstance(classes, dict)
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
                for v in classes.values()
            )
            for classes in splits.values()
        )
        for model, splits in recall.items()
    )


def _good_faces(faces: Any) -> bool:
    return isinstance(faces, dict) and all(
        model in MODELS
        and isinstance(fields, dict)
        and all(
            name in FACE_FIELDS and isinstance(text, str) and not set(text) - set(FACE_FIELDS[name])
            for name, text in fields.items()
        )
        for model, fields in faces.items()
    )


def load(path: Path) -> list[Record]:
    """The records in runs.json; none if there is no file. A damaged file is an error naming
    the file and the entry (never silently read as fewer runs)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise _bad(path, "version", f"{VERSION}")
    if not isinstance(data.get("runs"), list):
        raise _bad(path, "runs", "a list")
    return [_record(path, i, entry) for i, entry in enumerate(data["runs"])]


def save(path: Path, new: list[Record]) -> int:
    """Add `new` to the records in `path`; of two for the same run (params and fingerprint)
    the newer is kept. Returns how many records the file holds."""
    merged: dict[tuple[str, str], Record] = {}
    for record in [*load(path), *new]:
        # on a tie (the same experiment collected again) the later wins: what a newer
        # ferx-ablate reads of it (more per-face fields) replaces what an older one kept
        if record.key not in merged or newness(record) >= newness(merged[record.key]):
            merged[record.key] = record
    entries = [
        {
            "params": r.params,
            "fingerprint": r.fingerprint,
            "experiment": {k: getattr(r.experiment, k) for k in _EXPERIMENT_KEYS},
            "public_correct": r.public_correct,
            **({"faces": r.faces} if r.faces is not None else {}),
            **({"recall": r.recall} if r.recall is not None else {}),
        }
        for _, r in sorted(merged.items())
    ]
    write_json(path, {"version": VERSION, "runs": entries})
    return len(entries)


def find(records: list[Record], run_key: str) -> Record | None:
    """The record that stands for the run with this key (identity.fingerprint: the params and
    files its figures depend on): the newest, if several do."""
    found = [r for r in records if r.fingerprint == run_key]
    return max(found, key=newness) if found else None
