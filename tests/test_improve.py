import json

import pytest
import torch

from ferx.checkpoint import load_model
from tests.conftest import run_stage

TINY = {
    "prepare": {"synthetic": {"n_samples": 150}},
    "train": {"epochs": 1, "batch_size": 32},
    "runtime": {"threads": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for stage in ("prepare", "train"):
        result = run_stage(stage, root, TINY if stage == "prepare" else None)
        assert result.returncode == 0, result.stderr
    return root


def _conv_weights(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.endswith("weight") and v.dim() == 4}


def test_improve_fine_tunes_from_the_baseline_checkpoint(trained):
    params = {
        **TINY,
        "improve": {
            "epochs": 1,
            "lr": 1e-12,
            "init": "baseline",
            "retrain": "all",
            "weighting": "balanced",
        },
    }
    result = run_stage("improve", trained, params)
    assert result.returncode == 0, result.stderr
    baseline, _ = load_model(trained / "models/baseline.pt")
    improved, meta = load_model(trained / "models/improved.pt")
    assert meta["run"] == "improve"
    for name, weight in _conv_weights(baseline).items():  # lr ~0: weights stay the baseline's
        torch.testing.assert_close(_conv_weights(improved)[name], weight, rtol=0, atol=1e-8)
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    assert metrics["weighting"] == "balanced" and metrics["init"] == "baseline"
    weights = metrics["class_weights"]
    assert max(weights, key=weights.get) == "disgust"
    assert metrics["select_metric"] == "public macro_f1"
    assert (trained / "plots/improve/loss.png").exists()


@pytest.mark.parametrize(
    ("retrain", "retrained"),
    [
        # the default mini-Xception's top: its last two residual modules, and the head
        ("top", lambda name: name.startswith(("modules_.2.", "modules_.3.", "head."))),
        ("head", lambda name: name.startswith("head.")),
        ("bias", lambda name: name == "head.bias"),
    ],
)
def test_improve_retraining_part_leaves_every_other_tensor_as_the_baseline(
    trained, retrain, retrained
):
    params = {**TINY, "improve": {"epochs": 2, "lr": 0.05, "retrain": retrain}}
    result = run_stage("improve", trained, params)
    assert result.returncode == 0, result.stderr
    baseline = load_model(trained / "models/baseline.pt")[0].state_dict()
    improved = load_model(trained / "models/improved.pt")[0].state_dict()
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    assert metrics["retrain"] == retrain
    assert metrics["kept_start"] == (metrics["best_epoch"] == 0)
    assert baseline.keys() == improved.keys()
    for name, tensor in baseline.items():
        if retrained(name):  # changed, unless no epoch beat the baseline
            assert torch.equal(improved[name], tensor) == metrics["kept_start"], name
        else:  # weights and BatchNorm running statistics alike
            assert torch.equal(improved[name], tensor), name


def test_improve_from_scratch_does_not_start_from_the_baseline(trained):
    params = {**TINY, "improve": {"epochs": 1, "lr": 1e-12, "init": "scratch", "retrain": "all"}}
    assert run_stage("improve", trained, params).returncode == 0
    baseline, _ = load_model(trained / "models/baseline.pt")
    improved, _ = load_model(trained / "models/improved.pt")
    stem = "stem.0.weight"
    assert not torch.allclose(_conv_weights(baseline)[stem], _conv_weights(improved)[stem])


def test_improve_without_a_baseline_model_is_a_clear_error(tmp_path):
    assert run_stage("prepare", tmp_path, TINY).returncode == 0
    result = run_stage("improve", tmp_path)
    assert result.returncode == 2 and "models/baseline.pt: not found" in result.stderr
