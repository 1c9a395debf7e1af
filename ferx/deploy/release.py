"""The released model: what `ferx-predict` and `Recognizer` use when you have no run of your own.

    ferx-release [--overwrite]        # in the project root, after a `dvc repro` on FER2013

copies the run's improved model (its ONNX export) with the run's model card, headline metrics
and evaluations into ferx/release/, a folder of the package, so a wheel carries it (package
data) and git keeps it. It refuses a run of the synthetic stand-in, and checks before writing
that the ONNX file's PrivateTest predictions are the run's evaluation, face for face. The
folder's release.json records each file's SHA-256 and the figures the card states, with their
95% intervals (a bootstrap over PrivateTest's faces); `check_release` (and a test, on the
committed folder) holds the files, the card and those figures to each other. No torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from ferx import paths
from ferx.atomic import atomic_dir
from ferx.data.splits import load_split
from ferx.errors import UserError
from ferx.labels import CLASS_NAMES

RELEASE_DIR = Path(__file__).resolve().parents[1] / "release"
MODEL = "ferx-fer2013.onnx"
CARD = "MODEL_CARD.md"
MANIFEST = "release.json"
SPLITS = {"public_test": "PublicTest", "private_test": "PrivateTest"}
RELEASED_MODEL = "improved"  # the run's model a release carries
BOOTSTRAP = 2000  # resamples of the faces for each 95% interval


class ReleaseError(UserError):
    """A run that cannot be released (or a release folder that does not hold together)."""


def released_model(folder: Path | None = None) -> Path | None:
    """The released ONNX file (in RELEASE_DIR), or None when this installation has none."""
    path = (folder or RELEASE_DIR) / MODEL
    return path if path.is_file() else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interval(labels: np.ndarray, predicted: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Accuracy and macro-F1 of `predicted` with 95% percentile intervals over the faces."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(labels), (BOOTSTRAP, len(labels)))
    accuracy = (labels[picks] == predicted[picks]).mean(axis=1)
    macro = np.array([_macro_f1(labels[p], predicted[p]) for p in picks])
    return {
        "accuracy": float((labels == predicted).mean()),
        "accuracy_ci95": [float(v) for v in np.percentile(accuracy, [2.5, 97.5])],
        "macro_f1": _macro_f1(labels, predicted),
        "macro_f1_ci95": [float(v) for v in np.percentile(macro, [2.5, 97.5])],
        "n_faces": len(labels),
    }


def _macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    k = len(CLASS_NAMES)
    confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    hits = np.diag(confusion).astype(float)
    precision = np.divide(hits, confusion.sum(0), out=np.zeros(k), where=confusion.sum(0) > 0)
    recall = np.divide(hits, confusion.sum(1), out=np.zeros(k), where=confusion.sum(1) > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(k), where=total > 0)
    return float(f1.mean())


def source_commit(root: Path) -> dict[str, Any]:
    """The git commit the run's code came from, and whether tracked files differed from it
    (None when `root` is not a git checkout): with params.yaml and the card, what makes the
    release reproducible."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        except OSError:  # no git installed
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "tracked_files_changed": bool(changes) if commit else None}


def _run_file(root: Path, relative: Path) -> Path:
    path = root / relative
    if not path.is_file():
        raise ReleaseError(f"{relative}: not found; run `dvc repro` (on FER2013) first")
    return path


def make_release(
    root: Path, prepared_dir: Path, target: Path | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Check the finished run in `root` and write its release to `target` (RELEASE_DIR); the
    manifest."""
    target = target or RELEASE_DIR
    summary = json.loads(_run_file(root, paths.SUMMARY).read_text())
    if summary.get("source") != "real":
        raise ReleaseError(
            f"this run was trained on {summary.get('source', 'unknown')} data, not FER2013: a "
            "release is only ever made from the real data (put FER2013 in data/raw and run "
            "`dvc repro`)"
        )
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ReleaseError(f"{target}: a release is there already; --overwrite replaces it")
    model = _run_file(root, paths.onnx_file(RELEASED_MODEL))
    _run_file(root, paths.export_report(RELEASED_MODEL))  # the export passed its parity check
    card = _run_file(root, paths.MODEL_CARD)
    evaluations = {s: _run_file(root, paths.evaluation(RELEASED_MODEL, s)) for s in SPLITS}
    figures = {}
    for split, path in evaluations.items():
        evaluation = json.loads(path.read_text())
        _, labels = load_split(prepared_dir / f"{split}.npz")
        predicted = np.frombuffer(evaluation["predicted"].encode(), np.uint8) - ord("0")
        if len(predicted) != len(labels):
            raise ReleaseError(
                f"{path}: {len(predicted)} faces evaluated, {len(labels)} in {prepared_dir}: "
                "the evaluation is of other data; rerun `dvc repro`"
            )
        if split == "private_test":
            _same_predictions(model, prepared_dir / f"{split}.npz", predicted)
        figures[split] = interval(labels, predicted.astype(np.int64))
        if abs(figures[split]["accuracy"] - evaluation["accuracy"]) > 1e-9:
            raise ReleaseError(f"{path}: its accuracy does not match its own per-face record")
    manifest = {
        "model": MODEL,
        "trained_on": "FER2013 (Training split; PublicTest chose, PrivateTest reported)",
        "source": "real",
        "class_names": list(CLASS_NAMES),
        "released": date.today().isoformat(),
        "made_by": "ferx-release",
        "made_with": {"command": "dvc repro, then ferx-release", **source_commit(root)},
        "figures": figures,
        "files": {},
    }
    with atomic_dir(target) as staging:  # the old release stays until the new one checks out
        shutil.copyfile(model, staging / MODEL)
        shutil.copyfile(root / paths.SUMMARY, staging / "summary.json")
        for split, path in evaluations.items():
            shutil.copyfile(path, staging / f"evaluation_{split}.json")
        (staging / CARD).write_text(release_card(card.read_text(), manifest))
        for file in sorted(staging.iterdir()):
            manifest["files"][file.name] = sha256(file)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        problems = check_release(staging)
        if problems:
            raise ReleaseError("the release does not hold together: " + "; ".join(problems))
    return manifest


def _same_predictions(model: Path, split: Path, predicted: np.ndarray) -> None:
    from ferx.onnx_model import OnnxModel

    images, _ = load_split(split)
    ours = OnnxModel(model).logits(images).argmax(axis=1)
    differ = int((ours != predicted).sum())
    if differ:
        raise ReleaseError(
            f"{model}: its PrivateTest predictions differ from the run's evaluation on {differ} "
            f"of {len(predicted)} faces; rerun `dvc repro` so that both come from one model"
        )


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def _figure_line(name: str, figures: dict[str, Any]) -> str:
    low, high = figures["accuracy_ci95"]
    f_low, f_high = figures["macro_f1_ci95"]
    return (
        f"| {name} | {_percent(figures['accuracy'])} [{_percent(low)}, {_percent(high)}] | "
        f"{_percent(figures['macro_f1'])} [{_percent(f_low)}, {_percent(f_high)}] | "
        f"{figures['n_faces']} |"
    )


def _made_at(made_with: dict[str, Any]) -> str:
    commit = made_with.get("commit")
    if not commit:
        return "outside a git checkout (no commit recorded)"
    changed = " with tracked files changed" if made_with.get("tracked_files_changed") else ""
    return f"at commit `{commit}` of ferx{changed}"


def release_card(run_card: str, manifest: dict[str, Any]) -> str:
    """The run's model card with the release's own section first: what the weights are, the
    data's terms, the protocol and the figures with their intervals."""
    figures = manifest["figures"]
    header = f"""# ferx released model ({manifest["released"]})

`{MODEL}`: the improved model of a default ferx run (`dvc repro`) on FER2013, exported to ONNX
(raw 48x48 grey pixels in, 0..255; the 7 logits out, classes {", ".join(CLASS_NAMES)}).
`ferx-predict` and `ferx.Recognizer` use it when you have no model of your own.

**Trained on** FER2013's Training split (28,709 faces), the dataset of the 2013 Kaggle challenge
"Challenges in Representation Learning: Facial Expression Recognition" (Goodfellow et al.
2013; faces found by web image search). The data came with the challenge's terms, for research;
these weights are derived from it: check those terms before any other use. FER2013's faces
are 48x48, mostly frontal, and its labels are noisy; expect less on other faces.

**Protocol**: every choice (the epoch kept, the improve variant) was made on PublicTest;
PrivateTest was never used to choose and is reported.

**Made with** `dvc repro` (the default params.yaml, FER2013 in data/raw/) then `ferx-release`,
{_made_at(manifest["made_with"])}.

| split | accuracy [95% interval] | macro-F1 [95% interval] | faces |
|---|---|---|---|
{_figure_line("PrivateTest (reported)", figures["private_test"])}
{_figure_line("PublicTest (chose)", figures["public_test"])}

Intervals: {BOOTSTRAP} bootstrap resamples of the split's faces. The run's own card follows
(both of its models; the released one is `improved`).

---

"""
    return header + run_card


def check_release(folder: Path | None = None) -> list[str]:
    """What does not hold together in a release folder (RELEASE_DIR; empty: all of it does)."""
    folder = folder or RELEASE_DIR
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing"]
    manifest = json.loads(manifest_path.read_text())
    problems = [
        f"{name}: {'missing' if not (folder / name).is_file() else 'changed since the release'}"
        for name, digest in manifest["files"].items()
        if not (folder / name).is_file() or sha256(folder / name) != digest
    ]
    if problems:
        return problems
    from ferx.onnx_model import OnnxModel, OnnxModelError

    try:
        meta = OnnxModel(folder / manifest["model"]).meta
    except OnnxModelError as exc:
        return [str(exc)]
    if meta.get("source") != "real":
        problems.append(f"{manifest['model']}: trained on {meta.get('source')} data, not FER2013")
    if manifest["class_names"] != list(CLASS_NAMES):
        problems.append(f"{MANIFEST}: class names {manifest['class_names']}")
    summary = json.loads((folder / "summary.json").read_text())
    card = (folder / CARD).read_text()
    for split, title in SPLITS.items():
        figures = manifest["figures"][split]
        evaluation = json.loads((folder / f"evaluation_{split}.json").read_text())
        stated = summary[RELEASED_MODEL][split.split("_")[0]]["accuracy"]  # 4 places
        if evaluation["accuracy"] != figures["accuracy"] or round(figures["accuracy"], 4) != stated:
            problems.append(
                f"{split}: accuracy {figures['accuracy']} in {MANIFEST}, "
                f"{evaluation['accuracy']} in its evaluation, {stated} in summary"
            )
        if _percent(figures["accuracy"]) not in card:
            problems.append(
                f"{CARD}: does not state {title} accuracy {_percent(figures['accuracy'])}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferx-release", description=__doc__.splitlines()[0])
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier release")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    from ferx.params import load_params

    try:
        prepared = Path(load_params(args.params).prepare.out_dir)
        manifest = make_release(Path("."), prepared, overwrite=args.overwrite)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    private = manifest["figures"]["private_test"]
    print(
        f"released {RELEASE_DIR / MODEL}: PrivateTest accuracy {_percent(private['accuracy'])}, "
        f"macro-F1 {_percent(private['macro_f1'])}; card {RELEASE_DIR / CARD}. Commit the folder "
        "(git add ferx/release) and rebuild the wheel to ship it."
    )
    problems = check_release()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
