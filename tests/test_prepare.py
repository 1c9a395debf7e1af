import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferx.data.prepare import experiment_origin
from ferx.data.splits import load_split
from ferx.data.synthetic import to_csv_text
from tests.conftest import run_stage

SMALL = {"prepare": {"synthetic": {"n_samples": 150, "seed": 1}}}


def test_synthetic_default_writes_splits_probes_and_says_so_loudly(tmp_path):
    result = run_stage("prepare", tmp_path, SMALL)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data/probes").exists()  # the probes stage draws them
    assert run_stage("probes", tmp_path).returncode == 0
    assert "NO REAL DATA" in result.stderr and "SYNTHETIC" in result.stderr
    summary = json.loads((tmp_path / "metrics/prepare.json").read_text())
    assert summary["source"] == "synthetic" and summary["sha256"] is None
    for split in ("train", "public_test", "private_test"):
        x, y = load_split(tmp_path / f"data/prepared/{split}.npz")
        assert x.dtype == np.uint8 and x.shape[1:] == (48, 48) and y.dtype == np.int64
        assert summary["counts"][split]["total"] == len(y)
        assert summary["counts"][split]["disgust"] == int((y == 1).sum())
    assert sorted(p.name for p in (tmp_path / "data/probes/test").iterdir()) == [
        "angry.png",
        "happy.png",
        "neutral.png",
        "surprise.png",
    ]
    assert sorted(p.name for p in (tmp_path / "data/probes/test2").iterdir()) == [
        "disgust.png",
        "fear.png",
        "neutral.png",
        "sad.png",
    ]


def test_probes_are_private_test_faces_of_their_label_and_seeded(tmp_path):
    params = {"prepare": {**SMALL["prepare"], "probes": {"seed": 4, "test": ["happy", "fear"]}}}
    assert run_stage("prepare", tmp_path, params).returncode == 0
    assert run_stage("probes", tmp_path).returncode == 0
    x, y = load_split(tmp_path / "data/prepared/private_test.npz")
    first = {}
    for name, label in (("happy", 3), ("fear", 2)):
        image = np.asarray(Image.open(tmp_path / f"data/probes/test/{name}.png"))
        assert image.shape == (48, 48) and image.dtype == np.uint8
        matches = np.flatnonzero((x == image).all(axis=(1, 2)))
        assert matches.size and (y[matches] == label).all()
        first[name] = image
    assert run_stage("probes", tmp_path).returncode == 0  # same seed: same images
    for name, image in first.items():
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / f"data/probes/test/{name}.png")), image
        )


def test_real_csv_is_used_when_present_and_its_hash_recorded(tmp_path, small_csv, small_table):
    params = {"prepare": {"raw": str(small_csv)}}
    result = run_stage("prepare", tmp_path, params)
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" not in result.stderr
    summary = json.loads((tmp_path / "metrics/prepare.json").read_text())
    assert summary["source"] == "real"
    assert summary["sha256"] == hashlib.sha256(small_csv.read_bytes()).hexdigest()
    x, y = load_split(tmp_path / "data/prepared/public_test.npz")
    expected_x, expected_y = small_table.split("PublicTest")
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)


def test_invalid_file_is_an_error_never_a_fallback_and_leaves_nothing(tmp_path):
    bad = tmp_path / "fer2013.csv"
    bad.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    result = run_stage("prepare", tmp_path, {"prepare": {"raw": str(bad)}})
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "line 2: field 'emotion'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_a_failed_rerun_keeps_the_previous_outputs_whole(tmp_path, small_csv):
    assert run_stage("prepare", tmp_path, {"prepare": {"raw": str(small_csv)}}).returncode == 0
    before = (tmp_path / "data/prepared/train.npz").read_bytes()
    small_csv.write_text(small_csv.read_text().replace(",Training", ",Trainnig", 1))
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 2 and "field 'Usage'" in result.stderr
    assert (tmp_path / "data/prepared/train.npz").read_bytes() == before
    assert not list((tmp_path / "data/prepared").glob(".*"))  # no temp files left behind


def test_bad_params_stop_the_stage_before_any_work(tmp_path):
    result = run_stage("prepare", tmp_path, {"prepare": {"seeed": 1}})
    assert result.returncode == 2
    assert "prepare.seeed: unknown key" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def _raw_folder(root, table, *names: str):
    raw = root / "data/raw"
    raw.mkdir(parents=True)
    (raw / "README.md").write_text("notes")
    (raw / ".gitignore").write_text("/x.csv\n")
    for name in names:
        (raw / name).write_text(to_csv_text(table))
    return raw


def test_the_one_data_file_in_the_folder_is_used_whatever_its_name(tmp_path, small_table):
    _raw_folder(tmp_path, small_table, "icml_face_data.csv")
    (tmp_path / "data/raw/icml_face_data.csv.dvc").write_text("outs: []\n")
    result = run_stage("prepare", tmp_path, {})
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "metrics/prepare.json").read_text())
    assert summary["source"] == "real" and summary["input"] == "data/raw/icml_face_data.csv"


def test_two_data_files_are_an_error_naming_both(tmp_path, small_table):
    _raw_folder(tmp_path, small_table, "fer2013.csv", "faces.csv")
    result = run_stage("prepare", tmp_path, {})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "2 data files found (faces.csv, fer2013.csv)" in result.stderr
    assert not (tmp_path / "data/prepared").exists()


def test_source_real_without_data_is_an_error_and_synthetic_ignores_real_data(
    tmp_path, small_table
):
    result = run_stage("prepare", tmp_path, {"prepare": {"source": "real"}})
    assert result.returncode == 2 and "prepare.source is 'real'" in result.stderr
    assert not (tmp_path / "data/prepared").exists()
    _raw_folder(tmp_path, small_table, "fer2013.csv")
    result = run_stage("prepare", tmp_path, {"prepare": {"source": "synthetic", **SMALL_SYN}})
    assert result.returncode == 0 and "prepare.source is 'synthetic'" in result.stderr
    assert json.loads((tmp_path / "metrics/prepare.json").read_text())["source"] == "synthetic"


SMALL_SYN = SMALL["prepare"]


def test_an_experiment_workspace_without_the_data_its_repo_has_is_an_error(tmp_path, small_table):
    _raw_folder(tmp_path, small_table, "fer2013.csv")  # the user's workspace has FER2013
    workspace = tmp_path / ".dvc/tmp/exps/tmpabc123"  # where DVC runs a queued experiment
    (workspace / "data/raw").mkdir(parents=True)
    result = run_stage("prepare", workspace, SMALL)
    assert result.returncode == 2 and "SYNTHETIC" not in result.stderr
    assert "not in this DVC experiment's workspace" in result.stderr
    assert "dvc add data/raw/<file>" in result.stderr
    assert not (workspace / "data/prepared").exists()
    assert experiment_origin(workspace) == tmp_path and experiment_origin(tmp_path) is None


@pytest.mark.parametrize("source", ["auto", "real"])
def test_a_dvc_pointer_whose_data_is_missing_is_an_error_not_the_stand_in(
    tmp_path, small_table, source
):
    # a clone or a shard that did not `dvc pull`: the pointer is committed, its data is not here
    raw = tmp_path / "data/raw"
    raw.mkdir(parents=True)
    (raw / "fer2013.csv.dvc").write_text(
        "outs:\n- md5: ab8db41e4f61797ee1c3675a352508ca\n  size: 94718151\n  path: fer2013.csv\n"
    )
    params = {"prepare": {"source": source, **SMALL_SYN}}
    result = run_stage("prepare", tmp_path, params)
    assert result.returncode == 2 and "SYNTHETIC" not in result.stderr
    assert f"{Path('data/raw/fer2013.csv.dvc')}: tracks {Path('data/raw/fer2013.csv')}" in (
        result.stderr
    )
    assert "dvc pull" in result.stderr and not (tmp_path / "data/prepared").exists()
    (raw / "fer2013.csv").write_text(to_csv_text(small_table))  # pulled: the real file is used
    result = run_stage("prepare", tmp_path, params)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "metrics/prepare.json").read_text())["source"] == "real"
    # prepare.source: synthetic asks for the stand-in whatever is tracked
    (raw / "fer2013.csv").unlink()
    result = run_stage("prepare", tmp_path, {"prepare": {"source": "synthetic", **SMALL_SYN}})
    assert result.returncode == 0, result.stderr
