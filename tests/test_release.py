"""ferx-release: a release is made only from a real run, checked face for face, and its files,
card and figures hold together; ferx-predict and Recognizer fall back on it."""

import json

import numpy as np
import pytest

from ferx import Recognizer, paths
from ferx.data.synthetic import make_synthetic_fer
from ferx.deploy import release
from ferx.deploy.export import export_onnx
from ferx.deploy.predict import main as ferx_predict
from ferx.models import MiniXception
from ferx.onnx_model import OnnxModel

FACES = make_synthetic_fer(140, seed=2)


def _fake_run(root, source: str = "real") -> None:
    """What `dvc repro` leaves that a release reads, from a small untrained model: its ONNX
    export and the evaluations it really gives (labels from the synthetic faces)."""
    prepared = root / "data/prepared"
    prepared.mkdir(parents=True)
    (root / paths.MODELS_DIR).mkdir()
    export_onnx(MiniXception(), root / paths.onnx_file("improved"), {"source": source})
    onnx_model = OnnxModel(root / paths.onnx_file("improved"))
    summary = {"source": source, "improved": {}}
    for split, (begin, end) in {"public_test": (0, 70), "private_test": (70, 140)}.items():
        x, y = FACES.pixels[begin:end], FACES.labels[begin:end]
        np.savez(prepared / f"{split}.npz", x=x, y=y)
        predicted = onnx_model.logits(x).argmax(axis=1)
        accuracy = float((predicted == y).mean())
        evaluation = {
            "source": source,
            "accuracy": accuracy,
            "predicted": "".join(str(int(p)) for p in predicted),
        }
        path = root / paths.evaluation("improved", split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(evaluation))
        summary["improved"][split.split("_")[0]] = {"accuracy": round(accuracy, 4)}  # as compare
    (root / paths.SUMMARY).write_text(json.dumps(summary))
    (root / paths.export_report("improved")).parent.mkdir(parents=True, exist_ok=True)
    (root / paths.export_report("improved")).write_text("{}")
    (root / paths.MODEL_CARD).parent.mkdir(parents=True, exist_ok=True)
    (root / paths.MODEL_CARD).write_text("# the run's card\n")


@pytest.fixture()
def run(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    _fake_run(root)
    return root


def test_a_real_run_is_released_with_figures_that_hold_together(run, tmp_path):
    target = tmp_path / "release"
    manifest = release.make_release(run, run / "data/prepared", target)
    assert release.check_release(target) == []
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*manifest["files"], release.MANIFEST]
    )
    private = manifest["figures"]["private_test"]
    low, high = private["accuracy_ci95"]
    assert low <= private["accuracy"] <= high and high - low > 0
    card = (target / release.CARD).read_text()
    assert "PrivateTest was never used to choose" in card and "# the run's card" in card
    assert "research" in card and release._percent(private["accuracy"]) in card
    # not a git checkout: the manifest and the card say so rather than invent a commit
    assert manifest["made_with"] == {
        "command": "dvc repro, then ferx-release",
        "commit": None,
        "tracked_files_changed": None,
    }
    assert "outside a git checkout" in card


def test_the_release_names_the_commit_of_the_run(run, tmp_path):
    import subprocess

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(run), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    (run / "params.yaml").write_text("train: {}\n")
    git("add", "params.yaml")
    git("commit", "-q", "-m", "run")
    commit = git("rev-parse", "HEAD")
    manifest = release.make_release(run, run / "data/prepared", tmp_path / "release")
    assert manifest["made_with"]["commit"] == commit
    assert manifest["made_with"]["tracked_files_changed"] is False
    assert f"at commit `{commit}` of ferx" in (tmp_path / "release" / release.CARD).read_text()
    (run / "params.yaml").write_text("train: {epochs: 1}\n")  # the run's params were edited
    again = release.make_release(run, run / "data/prepared", tmp_path / "release", overwrite=True)
    assert again["made_with"]["tracked_files_changed"] is True
    assert "with tracked files changed" in (tmp_path / "release" / release.CARD).read_text()


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda t: (t / release.MODEL).write_bytes(b"x"), "ferx-fer2013.onnx: changed"),
        (lambda t: (t / "summary.json").unlink(), "summary.json: missing"),
    ],
)
def test_a_release_whose_files_changed_is_found_out(run, tmp_path, tamper, problem):
    target = tmp_path / "release"
    release.make_release(run, run / "data/prepared", target)
    tamper(target)
    assert any(problem in p for p in release.check_release(target))


def test_figures_that_disagree_with_the_summary_are_found_out(run, tmp_path):
    target = tmp_path / "release"
    release.make_release(run, run / "data/prepared", target)
    manifest = json.loads((target / release.MANIFEST).read_text())
    summary = json.loads((target / "summary.json").read_text())
    summary["improved"]["private"]["accuracy"] += 0.01
    (target / "summary.json").write_text(json.dumps(summary))
    manifest["files"]["summary.json"] = release.sha256(target / "summary.json")
    (target / release.MANIFEST).write_text(json.dumps(manifest))
    assert any("private_test: accuracy" in p for p in release.check_release(target))


def test_the_stand_in_is_never_released(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    _fake_run(root, source="synthetic")
    with pytest.raises(release.ReleaseError, match="synthetic data, not FER2013"):
        release.make_release(root, root / "data/prepared", tmp_path / "release")
    assert not (tmp_path / "release").exists()


def test_an_onnx_file_that_is_not_the_evaluated_model_is_refused(run, tmp_path):
    evaluation_path = run / paths.evaluation("improved", "private_test")
    evaluation = json.loads(evaluation_path.read_text())
    flipped = "".join(str((int(c) + 1) % 7) if i < 3 else c
                      for i, c in enumerate(evaluation["predicted"]))  # fmt: skip
    evaluation["predicted"] = flipped
    evaluation_path.write_text(json.dumps(evaluation))
    with pytest.raises(release.ReleaseError, match="differ from the run's evaluation on 3 of 70"):
        release.make_release(run, run / "data/prepared", tmp_path / "release")


def test_an_earlier_release_is_replaced_only_with_overwrite(run, tmp_path):
    target = tmp_path / "release"
    release.make_release(run, run / "data/prepared", target)
    with pytest.raises(release.ReleaseError, match="--overwrite replaces it"):
        release.make_release(run, run / "data/prepared", target)
    release.make_release(run, run / "data/prepared", target, overwrite=True)
    assert release.check_release(target) == []


def test_without_a_model_of_your_own_predict_and_recognizer_use_the_release(
    run, tmp_path, monkeypatch, capsys
):
    target = tmp_path / "release"
    release.make_release(run, run / "data/prepared", target)
    monkeypatch.setattr(release, "RELEASE_DIR", target)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no models/ of a run here
    from PIL import Image

    Image.fromarray(FACES.pixels[0]).save(empty / "face.png")
    assert ferx_predict(["face.png", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == str(target / release.MODEL)
    assert "ferx's released model" in out["model_is"]
    recognizer = Recognizer()
    assert recognizer.model_path == target / release.MODEL
    face = recognizer.predict(empty / "face.png")[0]
    assert face.label == out["predictions"][0]["predicted"]


def test_the_committed_release_holds_together():
    if release.released_model() is None:
        pytest.skip("no release committed yet (ferx-release makes one from a real run)")
    assert release.check_release() == []


def test_a_failed_replacement_keeps_the_earlier_release(run, tmp_path):
    target = tmp_path / "release"
    release.make_release(run, run / "data/prepared", target)
    before = (target / release.MANIFEST).read_text()
    (run / paths.SUMMARY).write_text(json.dumps({"source": "real", "improved": {}}))
    with pytest.raises(KeyError):  # a summary without the figures: fails mid-way
        release.make_release(run, run / "data/prepared", target, overwrite=True)
    assert (target / release.MANIFEST).read_text() == before
    assert release.check_release(target) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
