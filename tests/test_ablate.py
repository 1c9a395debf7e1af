import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from ferx.ablate import (
    SpecError,
    load_spec,
    main,
    make_rows,
    markdown,
    pareto,
    queue_states,
    table_rows,
)
from tests.conftest import PROJECT_ROOT, dvc, make_dvc_project

TWO = {
    "name": "demo",
    "base": {"train.epochs": 2},
    "factors": {
        "smooth": {"train.label_smoothing": 0.0},
        "no_flip": {"train.augment.hflip": False, "train.label_smoothing": 0.2},
    },
}


def _spec(tmp_path: Path, content) -> Path:
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    path = tmp_path / "spec.yaml"
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path.write_text(text)
    return path


def _rows(tmp_path, design):
    spec = load_spec(_spec(tmp_path, {**TWO, "design": design}), tmp_path / "params.yaml")
    return make_rows(spec)


def test_cumulative_rows_switch_the_factors_on_one_after_another(tmp_path):
    rows = _rows(tmp_path, "cumulative")
    assert [r.experiment for r in rows] == ["demo-0", "demo-1", "demo-2"]
    assert [list(r.on.values()) for r in rows] == [[False, False], [True, False], [True, True]]
    assert rows[0].params == {"train.epochs": 2}
    assert rows[1].params == {"train.epochs": 2, "train.label_smoothing": 0.0}
    # a later factor's setting of the same key wins
    assert rows[2].params == {
        "train.epochs": 2,
        "train.label_smoothing": 0.2,
        "train.augment.hflip": False,
    }


def test_one_at_a_time_and_full_designs(tmp_path):
    alone = _rows(tmp_path, "one_at_a_time")
    assert [list(r.on.values()) for r in alone] == [[False, False], [True, False], [False, True]]
    assert alone[2].params == {
        "train.epochs": 2,
        "train.augment.hflip": False,
        "train.label_smoothing": 0.2,
    }
    full = _rows(tmp_path, "full")
    assert [list(r.on.values()) for r in full] == [
        [False, False],
        [False, True],
        [True, False],
        [True, True],
    ]
    assert len({r.experiment for r in full}) == 4


def test_shipped_specs_are_valid():
    for path in sorted((PROJECT_ROOT / "ablations").glob("*.yaml")):
        spec = load_spec(path, PROJECT_ROOT / "params.yaml")
        assert len(make_rows(spec)) >= 2, path


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ({**TWO, "factors": {"lr": {"train.lrr": 1}}}, ["factors.lr", "train.lrr: unknown key"]),
        ({**TWO, "factors": {"lr": {"train.lr": "fast"}}}, ["factors.lr", "train.lr"]),
        ({**TWO, "base": {"train.epochs": 0}}, ["base", "train.epochs"]),
        ({**TWO, "factors": {"x": {"nosuch.key": 1}}}, ["factors.x", "nosuch"]),
        ({**TWO, "design": "latin_square"}, ["design", "cumulative"]),
        ({**TWO, "factors": {}}, ["factors", "at least one"]),
        ({**TWO, "factors": {"x": {}}}, ["factors.x", "sets no param"]),
        ({"base": {}, "factors": TWO["factors"]}, ["name"]),
        ({**TWO, "extra": 1}, ["extra: unknown key"]),
        ("- just\n- a list\n", ["expected a mapping"]),
        ("name: [unclosed\n", ["not valid YAML"]),
    ],
)
def test_bad_specs_name_the_file_and_the_key(tmp_path, content, fragments):
    path = _spec(tmp_path, content)
    with pytest.raises(SpecError) as info:
        load_spec(path, tmp_path / "params.yaml")
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_table_takes_each_experiments_numbers_and_marks_failures(tmp_path):
    spec = load_spec(_spec(tmp_path, TWO), tmp_path / "params.yaml")
    rows = make_rows(spec)

    def summary(acc: float) -> dict:
        split = {"accuracy": acc, "macro_f1": acc - 0.1, "tta_accuracy": acc + 0.01}
        model = {"public": split, "private": {**split, "accuracy": acc + 0.02}}
        model |= {"gflops": 0.006, "efficiency": 1e4 * acc, "train_minutes": 3.5}
        return {"source": "synthetic", "baseline": model}

    found = {
        "demo-0": {"params": {"evaluate": {"tta": "flip_shift"}}, "metrics": summary(0.5)},
        "demo-1": {"params": {"evaluate": {"tta": "flip"}}, "metrics": summary(0.6)},
    }
    records = table_rows(spec, rows, found, {"demo-2": "error: out of memory"})
    assert records[0]["private_accuracy"] == 0.52 and records[1]["public_accuracy"] == 0.6
    assert records[1]["smooth"] is True and records[1]["no_flip"] is False
    assert records[0]["tta_gflops"] == pytest.approx(0.06) and records[1]["tta_gflops"] == 0.012
    assert records[2] == {
        "experiment": "demo-2",
        "smooth": True,
        "no_flip": True,
        "status": "failed",
        "error": "error: out of memory",
    }
    text = markdown(spec, records)
    assert "| N | N | 0.5000 | 0.5200 |" in text and "failed: error: out of memory" in text
    assert "PublicTest chose" in text and "synthetic" in text


def test_pareto_front_keeps_what_nothing_beats_on_cost_and_accuracy():
    points = [(1.0, 60.0), (0.5, 62.0), (2.0, 65.0), (3.0, 64.0), (0.5, 50.0)]
    assert pareto(points) == [(0.5, 62.0), (2.0, 65.0)]


@pytest.mark.slow
def test_ablation_end_to_end_through_dvc_experiments(tmp_path, monkeypatch, capsys):
    root = make_dvc_project(
        tmp_path,
        {
            "prepare": {"synthetic": {"n_samples": 120}},
            "train": {"epochs": 1, "batch_size": 32},
            "improve": {"epochs": 1},
            "runtime": {"threads": 1},
        },
    )
    monkeypatch.chdir(root)
    # a bad spec queues nothing
    (root / "bad.yaml").write_text(yaml.safe_dump({**TWO, "factors": {"x": {"train.lrr": 1}}}))
    assert main(["bad.yaml"]) == 2
    assert "train.lrr: unknown key" in capsys.readouterr().err
    assert queue_states() == {}

    spec = {**TWO, "base": {"train.epochs": 1}, "factors": {"smooth": TWO["factors"]["smooth"]}}
    spec["factors"]["no_flip"] = {"train.augment.hflip": False}
    (root / "two.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["two.yaml"]) == 0
    # the progress line shows up while experiments run, not only once they are all done
    assert re.search(r"ablate: [0-2]/3 experiments done", capsys.readouterr().out)
    table = json.loads((root / "ablation/demo/table.json").read_text())
    assert [r["experiment"] for r in table] == ["demo-0", "demo-1", "demo-2"]
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    by_name = {}

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("name", "")).startswith("demo-") and isinstance(node.get("data"), dict):
                by_name[node["name"]] = node["data"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    for record in table:
        data = by_name[record["experiment"]]
        summary = data["metrics"]["metrics/summary.json"]["data"]["baseline"]
        assert record["private_accuracy"] == summary["private"]["accuracy"]
        assert record["public_accuracy"] == summary["public"]["accuracy"]
        assert record["gflops"] == summary["gflops"]
        params = data["params"]["params.yaml"]["data"]["train"]
        assert params["label_smoothing"] == (0.0 if record["smooth"] else 0.1)
        assert params["augment"]["hflip"] is (not record["no_flip"])
    assert (root / "ablation/demo/frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert "| Y | Y |" in (root / "ablation/demo/table.md").read_text()

    capsys.readouterr()
    assert main(["two.yaml"]) == 0  # a rerun finds every row done and queues nothing
    assert "3 already done, 0 queued" in capsys.readouterr().out
    assert main(["two.yaml", "--collect-only"]) == 0


class _Queue:
    """`dvc queue status` as a script of snapshots, one per poll (the last one repeats)."""

    def __init__(self, snapshots):
        self.snapshots, self.polls = snapshots, 0

    def __call__(self):
        snapshot = self.snapshots[min(self.polls, len(self.snapshots) - 1)]
        self.polls += 1
        return snapshot


def _rows_named(*names):
    from ferx.ablate import Row

    return [Row(experiment=n, on={}, params={}) for n in names]


def test_waiting_outlasts_a_row_missing_while_a_worker_takes_it(monkeypatch, capsys):
    import subprocess

    import ferx.ablate as ablate

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    # seen on FER2013: between two experiments the next one was briefly in no list
    queue = _Queue(
        [
            {"r-0": "Running", "r-1": "Queued"},
            {"r-0": "Success"},
            {"r-0": "Success"},
            {"r-0": "Success", "r-1": "Running"},
            {"r-0": "Success", "r-1": "Success"},
        ]
    )
    monkeypatch.setattr(ablate, "queue_states", queue)
    states = ablate.wait_for(_rows_named("r-0", "r-1"), jobs=1, poll=0, lost_after=60)
    assert states == {"r-0": "Success", "r-1": "Success"} and queue.polls == 5
    assert "2/2 experiments done" in capsys.readouterr().out


def test_a_row_that_never_comes_back_is_reported_lost(monkeypatch):
    import subprocess

    import ferx.ablate as ablate

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    monkeypatch.setattr(ablate, "queue_states", _Queue([{"r-0": "Success"}]))
    states = ablate.wait_for(_rows_named("r-0", "r-1"), jobs=1, poll=0.01, lost_after=0.05)
    assert states == {"r-0": "Success", "r-1": "Lost"}


def test_the_frontier_has_each_row_with_and_without_tta_and_stacks_close_labels():
    from ferx.ablate import _label_offsets, frontier_points

    records = [
        {"experiment": "r-0", "status": "done", "gflops": 0.006, "private_accuracy": 0.5946,
         "tta_gflops": 0.06, "private_tta_accuracy": 0.613},
        {"experiment": "r-1", "status": "done", "gflops": 0.006, "private_accuracy": 0.5949},
        {"experiment": "r-2", "status": "failed", "error": "boom"},
    ]  # fmt: skip
    points = frontier_points(records)
    assert [(label, x, tta) for label, x, _, tta in points] == [
        ("r-0", 0.006, False),
        ("r-0 + TTA", 0.06, True),
        ("r-1", 0.006, False),
    ]
    assert points[1][2] == pytest.approx(61.3)
    offsets = _label_offsets(points, gap=0.5)
    assert offsets[0] != offsets[2]  # 59.46 % and 59.49 % at one cost: two lines, not one blot
    assert offsets[1] == 0
    front = pareto([(x, y) for _, x, y, _ in points])
    assert front == [(0.006, pytest.approx(59.49)), (0.06, pytest.approx(61.3))]
