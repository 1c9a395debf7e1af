"""The real `dvc` CLI on the synthetic default, in a temporary git repo."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ferx.checkpoint import load_state
from ferx.synthetic import make_synthetic_fer, to_csv_text
from tests.conftest import dvc, git, make_dvc_project, stages_run

TINY = {"prepare": {"synthetic": {"n_samples": 120}}}
pytestmark = pytest.mark.slow


def test_prepare_runs_once_then_only_on_change(tmp_path):
    root = make_dvc_project(tmp_path, TINY)
    first = dvc(root, "repro", "prepare")
    assert stages_run(first.stdout) == ["prepare"]
    assert json.loads((root / "metrics/prepare.json").read_text())["source"] == "synthetic"
    assert stages_run(dvc(root, "repro", "prepare").stdout) == []

    dvc(root, "exp", "run", "-S", "prepare.probes.seed=7", "prepare")
    assert json.loads((root / "metrics/prepare.json").read_text())["source"] == "synthetic"

    (root / "data/raw/fer2013.csv").write_text(to_csv_text(make_synthetic_fer(100, seed=9)))
    assert stages_run(dvc(root, "repro", "prepare").stdout) == ["prepare"]
    assert json.loads((root / "metrics/prepare.json").read_text())["source"] == "real"


def test_misspelled_param_fails_the_stage_with_the_key(tmp_path):
    root = make_dvc_project(tmp_path, TINY)
    # DVC refuses `-S prepare.seeed=1` for a key params.yaml lacks, but `+key=` adds it quietly.
    result = dvc(root, "exp", "run", "-S", "+prepare.seeed=1", check=False)
    assert result.returncode != 0
    assert "prepare.seeed: unknown key" in result.stdout + result.stderr
    assert not (root / "data/prepared").exists()


TINY_TRAIN = {
    "prepare": {"synthetic": {"n_samples": 150}},
    "train": {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "threads": 1},
}


def test_train_stage_through_dvc_then_nothing_to_do(tmp_path):
    root = make_dvc_project(tmp_path, TINY_TRAIN)
    assert stages_run(dvc(root, "repro", "train").stdout) == ["prepare", "train"]
    metrics = json.loads((root / "metrics/train.json").read_text())
    assert metrics["source"] == "synthetic" and metrics["epochs_run"] == 3
    assert 1 <= metrics["best_epoch"] <= 3 and 0 <= metrics["private"]["accuracy"] <= 1
    for path in ("models/baseline.pt", "plots/train/loss.png", "plots/train/accuracy.png"):
        assert (root / path).stat().st_size > 0, path
    steps = (root / "dvclive/train/plots/metrics/public/accuracy.tsv").read_text().splitlines()
    assert len(steps) == 1 + 3
    assert stages_run(dvc(root, "repro", "train").stdout) == []
    shown = dvc(root, "plots", "show", "--json", "baseline_accuracy").stdout
    assert "accuracy" in shown


def test_killed_train_stage_resumes_and_ends_like_an_uninterrupted_run(tmp_path):
    params = {**TINY_TRAIN, "train": {**TINY_TRAIN["train"], "epochs": 4}}
    reference = make_dvc_project(tmp_path / "reference", params)
    dvc(reference, "repro", "train")
    expected = json.loads((reference / "metrics/train.json").read_text())

    root = make_dvc_project(tmp_path / "killed", params)
    dvc(root, "repro", "prepare")
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "train"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state = root / "checkpoints/train/state.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not _finished_epochs(state):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # mid-epoch 2: no chance to clean up
    process.wait()
    assert 1 <= _finished_epochs(state) < 4
    assert not (root / "models/baseline.pt").exists()

    result = dvc(root, "repro", "train")
    assert "resuming after epoch" in result.stdout
    resumed = json.loads((root / "metrics/train.json").read_text())
    for key in ("best_epoch", "epochs_run", "public", "private"):
        assert resumed[key] == expected[key], key


def _finished_epochs(state: Path) -> int:
    try:
        return int(load_state(state)["epoch"])
    except (ValueError, KeyError):
        return 0


TINY_ALL = {
    **TINY_TRAIN,
    "improve": {"epochs": 1},
}


def test_whole_pipeline_then_experiments_rerun_only_what_follows(tmp_path):
    root = make_dvc_project(tmp_path, TINY_ALL)
    ran = stages_run(dvc(root, "repro").stdout)
    assert set(ran) == {"prepare", "train", "improve", "compare", "cost"} | EXPLAIN | EVALUATE
    for model in ("baseline", "improved"):
        for split in ("public_test", "private_test"):
            report = json.loads((root / f"metrics/eval/{model}_{split}.json").read_text())
            assert report["source"] == "synthetic" and report["model"] == model
            assert (root / f"plots/eval/{model}_{split}/confusion.png").exists()
    compared = json.loads((root / "metrics/compare.json").read_text())
    assert len(compared["delta"]["recall"]) == 7
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first run")

    result = dvc(root, "exp", "run", "-S", "improve.lr=0.002")
    improved_only = {"improve", "compare", "cost", "explain@improved"}
    assert set(stages_run(result.stdout)) == improved_only | {
        e for e in EVALUATE if "improved" in e
    }
    cost = json.loads((root / "metrics/cost.json").read_text())
    assert cost["baseline"]["parameters"] == 56_951 and cost["improved"]["efficiency"] > 0
    assert "0.002" in dvc(root, "exp", "show", "--json").stdout

    # New probe faces: prepare and explain rerun; the npz splits are byte-identical, so no
    # training or evaluation does.
    result = dvc(root, "exp", "run", "-S", "prepare.probes.seed=5")
    assert set(stages_run(result.stdout)) == {"prepare"} | EXPLAIN
    assert stages_run(dvc(root, "repro").stdout) == []


EXPLAIN = {"explain@baseline", "explain@improved"}
EVALUATE = {
    f"evaluate@{m}-{s}" for m in ("baseline", "improved") for s in ("public_test", "private_test")
}
