"""The real `dvc` CLI on the synthetic default, in a temporary git repo."""

import json

import pytest

from ferx.synthetic import make_synthetic_fer, to_csv_text
from tests.conftest import dvc, make_dvc_project, stages_run

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
