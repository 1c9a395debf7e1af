import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from ferx.cpu import cpu_features, cpu_model
from ferx.data.splits import load_split
from ferx.labels import CLASS_NAMES
from ferx.models.checkpoint import load_model
from ferx.training.precision import resolve_precision
from tests.conftest import PROJECT_ROOT, run_stage

TINY = {
    "prepare": {"synthetic": {"n_samples": 150}},
    "train": {"epochs": 1, "batch_size": 32},  # precision: auto, the default
    "runtime": {"threads": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for stage in ("prepare", "train", "improve_init"):
        result = run_stage(stage, root, TINY if stage == "prepare" else None)
        assert result.returncode == 0, result.stderr
    return root


# what `top` re-trains besides the head in the default mini-Xception: its last two residual
# modules (of four), by parameter name
TOP = ("residual_modules.2.", "residual_modules.3.", "head.")


def _conv_weights(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.endswith("weight") and v.dim() == 4}


@pytest.mark.slow
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


# The improve stage as DVC runs it, except that the PublicTest selection scores are scripted:
# one per evaluation (the starting baseline's "epoch 0" first, then each epoch), in place of
# the measured ones. Which epoch is kept is then known in advance, whatever tiny data make of
# the training; the weights are trained and saved for real.
SCRIPTED_SELECTION = """
import runpy
import sys

import ferx.training.loop

evaluate, scores = ferx.training.loop._evaluate, iter({scores!r})


def scripted(*args):
    row = evaluate(*args)
    row[{key!r}] = next(scores)
    return row


ferx.training.loop._evaluate = scripted
sys.argv = [{stage!r}]
runpy.run_path({stage!r}, run_name="__main__")
"""


def run_improve_scored(root, params: dict, scores: list[float]) -> subprocess.CompletedProcess:
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    code = SCRIPTED_SELECTION.format(
        scores=scores,
        key=f"public/{params['improve']['select_metric']}",
        stage=str(PROJECT_ROOT / "stages" / "improve.py"),
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("retrain", "retrained"),
    [
        # the default mini-Xception's top: its last two residual modules, and the head
        ("top", lambda name: name.startswith(TOP)),
        ("head", lambda name: name.startswith("head.")),
        ("bias", lambda name: name == "head.bias"),
    ],
)
def test_improve_retraining_part_changes_that_part_and_leaves_every_other_tensor(
    trained, retrain, retrained
):
    improve = {"epochs": 2, "lr": 0.05, "retrain": retrain, "select_metric": "macro_f1"}
    # epoch 1 beats the baseline and epoch 2 does not: epoch 1 is kept
    result = run_improve_scored(trained, {**TINY, "improve": improve}, [0.0, 1.0, 0.5])
    assert result.returncode == 0, result.stderr
    baseline = load_model(trained / "models/baseline.pt")[0].state_dict()
    improved = load_model(trained / "models/improved.pt")[0].state_dict()
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    assert metrics["retrain"] == retrain and metrics["epochs_run"] == 2
    assert metrics["best_epoch"] == 1 and metrics["kept_start"] is False
    assert metrics["public"]["macro_f1"] == 1.0  # the kept row is epoch 1's
    assert baseline.keys() == improved.keys()
    for name, tensor in baseline.items():
        # what learns has moved; the rest, weights and BatchNorm running statistics alike,
        # is still the baseline's to the bit
        assert torch.equal(improved[name], tensor) != retrained(name), name


@pytest.mark.slow
def test_improve_that_no_epoch_beats_saves_the_baseline_unchanged(trained):
    improve = {"epochs": 2, "lr": 0.05, "retrain": "top", "select_metric": "accuracy"}
    result = run_improve_scored(trained, {**TINY, "improve": improve}, [0.5, 0.5, 0.4])
    assert result.returncode == 0, result.stderr
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    assert metrics["best_epoch"] == 0 and metrics["kept_start"] is True
    assert metrics["public"]["accuracy"] == 0.5
    baseline = load_model(trained / "models/baseline.pt")[0].state_dict()
    improved = load_model(trained / "models/improved.pt")[0].state_dict()
    assert baseline.keys() == improved.keys()
    for name, tensor in baseline.items():  # the epochs trained, but none was kept
        assert torch.equal(improved[name], tensor), name


@pytest.mark.slow
def test_improve_from_scratch_does_not_start_from_the_baseline(trained):
    params = {**TINY, "improve": {"epochs": 1, "lr": 1e-12, "init": "scratch", "retrain": "all"}}
    assert run_stage("improve", trained, params).returncode == 0
    baseline, _ = load_model(trained / "models/baseline.pt")
    improved, _ = load_model(trained / "models/improved.pt")
    stem = "stem.0.weight"
    assert not torch.allclose(_conv_weights(baseline)[stem], _conv_weights(improved)[stem])


@pytest.mark.slow
def test_improve_without_a_baseline_model_is_a_clear_error(tmp_path):
    assert run_stage("prepare", tmp_path, TINY).returncode == 0
    result = run_stage("improve_init", tmp_path)
    assert result.returncode == 2
    expected = "error: models/baseline.pt: not found; run `dvc repro train` first"
    assert result.stderr.strip() == expected
    result = run_stage("improve", tmp_path)
    assert result.returncode == 2
    assert "models/improve_init/baseline.pt: not found" in result.stderr
    assert "run `dvc repro improve`" in result.stderr


def test_improve_init_holds_the_baseline_byte_for_byte_or_the_same_scratch_note(tmp_path):
    from ferx.training.improve_init import write_improve_init

    baseline = tmp_path / "baseline.pt"
    baseline.write_bytes(b"weights v1")
    folder = tmp_path / "improve_init"
    assert write_improve_init("baseline", baseline, folder).read_bytes() == b"weights v1"
    note = write_improve_init("scratch", baseline, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["scratch.txt"]  # the copy is gone
    first = note.read_bytes()
    baseline.write_bytes(b"weights v2")  # a new baseline: the same note, so DVC skips improve
    assert write_improve_init("scratch", baseline, folder).read_bytes() == first


@pytest.mark.slow
def test_each_training_records_what_decided_its_bits(trained):
    # run_stage gives the child the parent's environment: OMP_NUM_THREADS etc. as set here
    record = json.loads((trained / "metrics/train.json").read_text())["reproducibility"]
    assert record["torch"] == torch.__version__
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["threads"] == 1  # TINY's runtime.threads
    # train.precision: auto, as it resolved here (what ran, never "auto")
    assert record["precision"] in ("fp32", "bf16")  # what ran, never "auto"
    expected = resolve_precision("auto", torch.device("cpu"))
    assert (record["precision"], record["precision_reason"]) == (
        expected.precision,
        expected.reason,
    )
    assert record["cpu"] == cpu_model() and record["cpu_features"] == cpu_features()
    assert record["device"] == "cpu"
    assert record["memory_format"] == "channels_last" and record["eval_batch_size"] == 64
    assert set(record["environment"]) <= {
        "ATEN_CPU_CAPABILITY",
        "ONEDNN_MAX_CPU_ISA",
        "DNNL_MAX_CPU_ISA",
        "MKL_CBWR",
        "OMP_NUM_THREADS",
    }


@pytest.mark.slow
@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="the AVX2 cap is an x86 instruction set with AVX2 or more",
)
def test_an_instruction_set_cap_is_recorded(tmp_path):
    import os

    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    params = {**TINY, "prepare": {"synthetic": {"n_samples": 70}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("prepare", "train"):
        script = str(PROJECT_ROOT / "stages" / f"{stage}.py")
        result = subprocess.run(
            [sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
    # auto (TINY's, the default) capped at AVX2 trains in fp32, says so and warns of nothing
    assert "train: precision auto -> fp32 (" in result.stdout
    assert "warning: train.precision" not in result.stderr
    record = json.loads((tmp_path / "metrics/train.json").read_text())["reproducibility"]
    assert record["cpu_capability"] == "AVX2"
    assert record["environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert record["precision"] == "fp32"
    # an explicit bf16 there runs its slow path (kept short: one epoch of 70 faces), warned
    explicit = {**params, "train": {**TINY["train"], "precision": "bf16"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(explicit))
    result = subprocess.run(
        [sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "warning: train.precision: bf16, but " in result.stderr
    assert (
        json.loads((tmp_path / "metrics/train.json").read_text())["reproducibility"]["precision"]
        == "bf16"
    )


@pytest.mark.slow
def test_improve_with_a_logit_adjusted_loss_balanced_draws_and_a_tuned_tau(trained):
    from ferx.training.logit_adjust import TAU_GRID

    params = {
        **TINY,
        "improve": {"epochs": 1, "loss_tau": 1.0, "sampling": "class_balanced",
                    "logit_adjust": "tuned", "adjust_max_accuracy_drop": 1.0},
    }  # fmt: skip
    result = run_stage("improve", trained, params)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    adjustment = metrics["logit_adjustment"]
    assert adjustment["tau"] in TAU_GRID and f"logit adjustment tau {adjustment['tau']:g}" in (
        result.stdout
    )
    assert metrics["loss_tau"] == 1.0 and metrics["sampling"] == "class_balanced"
    chosen = next(r for r in adjustment["scanned"] if r["tau"] == adjustment["tau"])
    # the saved model carries tau: its PublicTest figures are the chosen tau's
    assert metrics["public"]["macro_f1"] == pytest.approx(chosen["macro_f1"], abs=1e-6)
    assert chosen["macro_f1"] == max(r["macro_f1"] for r in adjustment["scanned"])
    assert len(adjustment["public_cross_fitted"]["offsets_per_fold"]) == 2  # tau's, out of sample

    # epochs 0: no fine-tune, the baseline's weights and only the adjustment
    params["improve"] = {"epochs": 0, "logit_adjust": "tuned", "adjust_max_accuracy_drop": 1.0}
    assert run_stage("improve", trained, params).returncode == 0
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    assert metrics["best_epoch"] == 0 and metrics["epochs_run"] == 0
    baseline, _ = load_model(trained / "models/baseline.pt")
    improved, _ = load_model(trained / "models/improved.pt")
    tau = metrics["logit_adjustment"]["tau"]
    for key, tensor in baseline.state_dict().items():
        if key != "head.bias":
            assert torch.equal(tensor, improved.state_dict()[key]), key
    moved = improved.state_dict()["head.bias"] - baseline.state_dict()["head.bias"]
    _, y = load_split(trained / "data/prepared/train.npz")
    counts = np.bincount(y, minlength=7)
    log_prior = torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)
    torch.testing.assert_close(moved, -tau * log_prior, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_improve_with_per_class_offsets_writes_them_into_the_head(trained):
    params = {**TINY, "improve": {"epochs": 0, "logit_adjust": "biases",
                                  "adjust_max_accuracy_drop": 1.0}}  # fmt: skip
    result = run_stage("improve", trained, params)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((trained / "metrics/improve.json").read_text())
    adjustment = metrics["logit_adjustment"]
    assert adjustment["kind"] == "biases" and "logit adjustment per-class offsets" in result.stdout
    offsets = torch.tensor([adjustment["offsets"][name] for name in CLASS_NAMES])
    baseline, _ = load_model(trained / "models/baseline.pt")
    improved, _ = load_model(trained / "models/improved.pt")
    for key, tensor in baseline.state_dict().items():
        if key != "head.bias":
            assert torch.equal(tensor, improved.state_dict()[key]), key
    moved = improved.state_dict()["head.bias"] - baseline.state_dict()["head.bias"]
    torch.testing.assert_close(moved, offsets, atol=1e-5, rtol=1e-5)
    # the saved model carries the offsets: its PublicTest figures are the chosen ones
    assert metrics["public"]["macro_f1"] == pytest.approx(
        adjustment["public_after"]["macro_f1"], abs=1e-6
    )
    assert adjustment["public_after"]["macro_f1"] >= adjustment["public_before"]["macro_f1"]
    # and what the offsets are worth on faces they were not chosen on, each half's offsets
    # chosen on the other half of PublicTest
    crossed = adjustment["public_cross_fitted"]
    assert crossed["folds"] == 2 and len(crossed["offsets_per_fold"]) == 2
    assert 0 <= crossed["macro_f1"] <= 1 and set(crossed["recall"]) == set(CLASS_NAMES)
    assert isinstance(adjustment["converged"], bool) and isinstance(adjustment["at_bound"], bool)
