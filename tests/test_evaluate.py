import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from ferx.analysis.evaluate import confusion, confusion_records, evaluate_logits, plot_confusion
from ferx.labels import CLASS_NAMES
from tests.conftest import PROJECT_ROOT, dvc, git, run_stage

Y_TRUE = torch.tensor([0, 0, 1, 2, 2, 2])
Y_PRED = torch.tensor([0, 1, 1, 2, 2, 0])


def _logits(pred: torch.Tensor) -> torch.Tensor:
    logits = torch.full((len(pred), 7), -5.0)
    logits[torch.arange(len(pred)), pred] = 5.0
    return logits


def test_metrics_on_a_hand_made_prediction_set():
    report = evaluate_logits(_logits(Y_PRED), Y_TRUE)
    assert report["accuracy"] == pytest.approx(4 / 6)
    angry, disgust, fear = (report["per_class"][n] for n in ("angry", "disgust", "fear"))
    assert (angry["precision"], angry["recall"], angry["support"]) == (0.5, 0.5, 2)
    assert (disgust["precision"], disgust["recall"]) == (0.5, 1.0)
    assert fear["precision"] == 1.0 and fear["recall"] == pytest.approx(2 / 3)
    assert fear["f1"] == pytest.approx(0.8)
    # F1: angry 0.5, disgust 2/3, fear 0.8, the four absent classes 0 -> mean over 7
    assert report["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 7)
    # mean recall over the classes present: (0.5 + 1 + 2/3) / 3
    assert report["balanced_accuracy"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert list(report["per_class"]) == list(CLASS_NAMES)
    assert report["loss"] > 0


def test_confusion_counts_and_records():
    counts = confusion(Y_TRUE, _logits(Y_PRED))
    assert counts.shape == (7, 7) and counts.sum() == 6
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[2, 0] == 1 and counts[2, 2] == 2
    records = confusion_records(Y_TRUE, _logits(Y_PRED))
    assert records[1] == {"actual": "angry", "predicted": "disgust"}


def test_confusion_png_is_written(tmp_path):
    plot_confusion(np.eye(7, dtype=int) * 3, tmp_path / "c.png", "title")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_dvc_plots_show_accepts_the_confusion_file(tmp_path):
    git(tmp_path, "init", "-q")
    dvc(tmp_path, "init", "-q")
    (tmp_path / "confusion.json").write_text(json.dumps(confusion_records(Y_TRUE, _logits(Y_PRED))))
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n- confusion.json:\n    template: confusion\n    x: predicted\n    y: actual\n"
    )
    result = dvc(tmp_path, "plots", "show", "--json")
    shown = json.loads(result.stdout)
    assert "confusion.json" in json.dumps(shown) and not shown.get("errors")


@pytest.mark.slow
def test_evaluate_stage_refuses_a_missing_or_foreign_model_file(tmp_path):
    params = {"prepare": {"synthetic": {"n_samples": 100}}}
    assert run_stage("prepare", tmp_path, params).returncode == 0
    result = _evaluate(tmp_path)
    assert result.returncode == 2 and "models/baseline.pt: not found" in result.stderr
    (tmp_path / "models").mkdir()
    torch.save({"state_dict": {}, "format": "keras?"}, tmp_path / "models/baseline.pt")
    result = _evaluate(tmp_path)
    assert result.returncode == 2 and "not a ferx model file" in result.stderr
    assert "Traceback" not in result.stderr


def _evaluate(cwd) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "stages/evaluate.py"),
            "--model",
            "baseline",
            "--split",
            "private_test",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_the_evaluate_stage_infers_in_the_layout_and_batch_runtime_names(
    tmp_path, monkeypatch, layout
):
    import stages.evaluate as stage
    from ferx.atomic import write_json
    from ferx.data.prepare import _save_npz
    from ferx.data.synthetic import make_synthetic_fer
    from ferx.models import MiniXception
    from ferx.models.checkpoint import save_model
    from ferx.params import validate_params

    monkeypatch.chdir(tmp_path)
    save_model("models/baseline.pt", MiniXception(), source="synthetic")
    faces = make_synthetic_fer(90, seed=0)
    x, y = faces.split("PublicTest")
    Path("data/prepared").mkdir(parents=True)
    _save_npz(Path("data/prepared/public_test.npz"), x, y)
    write_json("data/prepared/source.json", {"source": "synthetic"})
    calls = []
    real = stage.predict_logits

    def spy(model, images, batch_size=128, device=None, layout="channels_last"):
        calls.append((batch_size, layout))
        return real(model, images, batch_size, device, layout)

    monkeypatch.setattr(stage, "predict_logits", spy)
    monkeypatch.setattr("ferx.models.inference.predict_logits", spy)  # the TTA views' calls
    params = validate_params(
        {"runtime": {"memory_format": layout, "eval_batch_size": 5}, "evaluate": {"tta": "flip"}}
    )
    stage.main(params, "baseline", "public_test")
    assert calls == [(5, layout)] * 3  # single view, then the two TTA views
    report = json.loads(Path("metrics/eval/baseline_public_test.json").read_text())
    assert report["source"] == "synthetic" and report["tta"]["n_views"] == 2
    # per face, in the split's order: right or wrong and the class predicted, both views
    for view in ("", "tta_"):
        correct, predicted = report[f"{view}correct"], report[f"{view}predicted"]
        assert len(correct) == len(predicted) == len(y)
        hits = np.array([int(p) for p in predicted]) == y
        assert correct == "".join("1" if h else "0" for h in hits)
    assert report["correct"].count("1") / len(y) == pytest.approx(report["accuracy"])
    assert report["tta_correct"].count("1") / len(y) == pytest.approx(report["tta"]["accuracy"])
