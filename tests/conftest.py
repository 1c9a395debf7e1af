"""Shared fixtures: tiny generated FER data in tmp_path (tests never touch the real FER2013)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferx.data.fercsv import FerTable
from ferx.data.synthetic import make_synthetic_fer, to_csv_text

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_table() -> FerTable:
    return make_synthetic_fer(n_samples=240, seed=3)


@pytest.fixture()
def small_csv(tmp_path: Path, small_table: FerTable) -> Path:
    path = tmp_path / "fer2013.csv"
    path.write_text(to_csv_text(small_table))
    return path


def run_stage(name: str, cwd: Path, params: dict | None = None) -> subprocess.CompletedProcess:
    """Run stages/<name>.py as DVC would, from `cwd`, with params.yaml written from `params`."""
    if params is not None:
        (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "stages" / f"{name}.py")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def tracked_files() -> list[str]:
    """The files git tracks in this checkout: what a fresh clone would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (PROJECT_ROOT / name).is_file()]


def make_dvc_project(root: Path, params_update: dict | None = None) -> Path:
    """A throwaway fresh clone of the pipeline (the tracked files, as they are in this working
    tree) in its own git + DVC repo, analytics off, params updated and committed."""
    for name in tracked_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in (params_update or {}).items():
        _merge(params.setdefault(section, {}), values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(root, "init", "-q")
    git(root, "config", "user.email", "ci@example.com")
    git(root, "config", "user.name", "ci")
    dvc(root, "config", "core.analytics", "false")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    return root


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # Stage commands say `python`: put this interpreter's folder first on PATH.
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def stages_run(output: str) -> list[str]:
    """Names of the stages a `dvc repro` / `dvc exp run` output says it ran."""
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture()
def training_dtypes(monkeypatch) -> list:
    """The dtype of every training forward of a MiniXception while the test runs (what autocast
    made of it), in order; eval forwards are left out."""
    from ferx.models import MiniXception

    seen: list = []
    forward = MiniXception.forward

    def spy(self, x):
        out = forward(self, x)
        if self.training:
            seen.append(out.dtype)
        return out

    monkeypatch.setattr(MiniXception, "forward", spy)
    return seen


def tiny_splits(n_samples: int = 160, seed: int = 0) -> dict:
    """train / public_test / private_test tensors from the synthetic generator (no files)."""
    from ferx.training.run_spec import splits_of

    return splits_of(make_synthetic_fer(n_samples, seed))
