"""ferx-ablate: specs, run identity across commits, seeds and intervals, the DVC queue."""

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ferx.analysis.cost_figure import label_offsets
from ferx.errors import UserError
from ferx.experiments import cli, identity, queue, records
from ferx.experiments.cli import main, threads_per_job
from ferx.experiments.frontier import frontier_points, pareto
from ferx.experiments.queue import Task, parse_status, wait_for
from ferx.experiments.spec import SpecError, load_spec, make_rows, make_runs
from ferx.experiments.stats import correct_from_text, mean_std, paired_bootstrap
from ferx.experiments.table import (
    Result,
    markdown,
    precision_note,
    run_figures,
    table_records,
)
from tests.conftest import PROJECT_ROOT, dvc, git, make_dvc_project

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


# --- the spec -------------------------------------------------------------------------


def test_cumulative_rows_switch_the_factors_on_one_after_another(tmp_path):
    rows = _rows(tmp_path, "cumulative")
    assert [r.index for r in rows] == [0, 1, 2]
    assert [r.label for r in rows] == ["reference", "+smooth", "+no_flip"]
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
    assert alone[2].label == "no_flip"
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
    assert full[3].label == "smooth + no_flip"


def test_shipped_specs_are_valid():
    for path in sorted((PROJECT_ROOT / "ablations").glob("*.yaml")):
        spec = load_spec(path, PROJECT_ROOT / "params.yaml")
        assert len(make_rows(spec)) >= 2, path


def test_a_factor_is_checked_on_top_of_the_base_every_run_has(tmp_path):
    # A spec that pins the recipe it was written for keeps working when params.yaml's default
    # changes: baseline_cnn takes no attention, which the base turns off for every run.
    content = {
        "name": "archs",
        "base": {"train.model.attention": "none"},
        "factors": {"cnn": {"train.model.arch": "baseline_cnn"}},
    }
    path = _spec(tmp_path, content)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["model"]["attention"] = "eca"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    spec = load_spec(path, tmp_path / "params.yaml")
    assert make_rows(spec)[1].params == {
        "train.model.attention": "none",
        "train.model.arch": "baseline_cnn",
    }
    # without the base's setting the same factor is refused, and the error names the factor
    path.write_text(yaml.safe_dump({**content, "base": {}}, sort_keys=False))
    with pytest.raises(SpecError, match=r"factors\.cnn: .*attention"):
        load_spec(path, tmp_path / "params.yaml")


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
        ({**TWO, "seeds": [0, 0]}, ["seeds", "twice"]),
        ({**TWO, "seeds": [0, -1]}, ["seeds", ">= 0"]),
        ({**TWO, "seeds": "0,1"}, ["seeds", "list"]),
        ({**TWO, "seeds": [0, 1], "base": {"train.seed": 3}}, ["base", "train.seed"]),
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


def test_runs_are_rows_times_seeds_with_complete_normalised_params(tmp_path):
    content = {**TWO, "seeds": [0, 1, 2], "factors": {"wd": {"train.weight_decay": "1e-4"}}}
    spec = load_spec(_spec(tmp_path, content), tmp_path / "params.yaml")
    current = yaml.safe_load((tmp_path / "params.yaml").read_text())
    runs = make_runs(spec, current)
    assert [r.name for r in runs] == [f"demo-{i}-s{s}" for i in range(2) for s in range(3)]
    assert [r.sets["train.seed"] for r in runs] == [0, 1, 2] * 2
    wd = runs[3].resolved["train"]
    assert wd["weight_decay"] == 0.0001 and wd["seed"] == 0 and wd["epochs"] == 2
    # every param is part of a run's identity, not only those the row sets; runtime is not
    assert runs[0].resolved["train"]["optimizer"] == current["train"]["optimizer"]
    assert "runtime" not in runs[0].resolved
    assert [r.seed for r in make_runs(spec, current, seeds=(7,))] == [7, 7]


def _pipeline() -> dict:
    """prep -> evaluate (a matrix) -> compare, which write what the table reads; explain
    reads the user's probes and writes what only people look at."""
    return {
        "stages": {
            "prep": {
                "deps": ["prep.py", "${prepare.raw}"],
                "params": ["prepare.raw", "prepare.out_dir"],
                "outs": ["${prepare.out_dir}"],
            },
            "evaluate": {
                "matrix": {"split": ["public_test", "private_test"]},
                "deps": ["ev.py", "${prepare.out_dir}/${item.split}.npz", "extra/${item.split}"],
                "params": ["train"],
                "outs": [{"metrics/eval/baseline_${item.split}.json": {"cache": False}}],
            },
            "compare": {
                "deps": ["cmp.py", "metrics/eval"],
                "metrics": [{"metrics/summary.json": {"cache": False}}],
            },
            "explain": {
                "deps": ["explain.py", "${explain.user_probes}", "metrics/summary.json"],
                "params": ["explain", "prepare.probes"],
                "outs": ["plots/explain"],
            },
        }
    }


PARAMS = {
    "prepare": {"raw": "data/raw", "out_dir": "data/prepared", "probes": {"seed": 0}},
    "train": {"lr": 0.001},
    "explain": {"user_probes": "data/user_probes"},
}
BLOBS = {
    p: str(i)
    for i, p in enumerate(
        ["prep.py", "ev.py", "cmp.py", "explain.py", "extra/public_test", "extra/private_test",
         "data/raw/README.md", "data/raw/fer2013.csv.dvc", "data/raw/.gitignore",
         "data/user_probes/README.md", "ferx_ablate_table.md"]
    )
}  # fmt: skip


def _with(update: dict) -> dict:
    return json.loads(json.dumps(PARAMS)) | update


def test_a_runs_inputs_are_what_the_tables_files_are_made_from_and_no_stage_writes():
    from ferx.experiments.identity import closure, stage_inputs

    assert stage_inputs(_pipeline(), PARAMS) == [
        "cmp.py", "data/raw", "ev.py", "extra/private_test", "extra/public_test",
        "metrics/eval",  # a folder of outputs: its files that no stage writes would count
        "prep.py",
    ]  # fmt: skip
    run = closure(_pipeline(), PARAMS)
    assert list(run.stages) == ["compare", "evaluate", "prep"]  # not explain
    assert run.params == {"prepare.out_dir": "data/prepared", "prepare.raw": "data/raw",
                          "train": {"lr": 0.001}}  # fmt: skip
    for stage in ({"foreach": [1], "do": {}}, {"wdir": "sub", "deps": []},
                  {"matrix": {"m": "${models}"}, "deps": []}):  # fmt: skip
        with pytest.raises(UserError, match="stage x"):
            stage_inputs({"stages": {"x": stage}}, PARAMS)
    with pytest.raises(UserError, match=r"no stage writes metrics/eval/baseline_public_test\.json"):
        stage_inputs({"stages": {"prep": _pipeline()["stages"]["prep"]}}, PARAMS)


def test_what_only_explains_or_presents_and_notes_beside_the_data_leave_a_run_as_it_was():
    before = identity.fingerprint(BLOBS, _pipeline(), PARAMS)
    same = [
        (BLOBS | {"explain.py": "x"}, PARAMS),
        (BLOBS | {"data/user_probes/happy.png": "x"}, PARAMS),
        (BLOBS | {"data/raw/README.md": "x", "data/raw/notes.txt": "y"}, PARAMS),
        (BLOBS | {"data/raw/.gitignore": "x"}, PARAMS),  # what `dvc add` writes
        (BLOBS | {"ferx_ablate_table.md": "x"}, PARAMS),
        (BLOBS, _with({"explain": {"user_probes": "elsewhere"}})),
        (BLOBS, _with({"prepare": {**PARAMS["prepare"], "probes": {"seed": 5}}})),
        (BLOBS, _with({"runtime": {"threads": 1}})),
    ]
    for blobs, params in same:
        assert identity.fingerprint(blobs, _pipeline(), params) == before, (blobs, params)
    other = [
        (BLOBS | {"data/raw/fer2013.csv.dvc": "x"}, PARAMS),  # other data
        (BLOBS | {"ev.py": "x"}, PARAMS),
        (BLOBS | {"extra/public_test": "x"}, PARAMS),
        (BLOBS | {"cmp.py": "x"}, PARAMS),
        (BLOBS, _with({"train": {"lr": 0.002}})),
    ]
    for blobs, params in other:
        assert identity.fingerprint(blobs, _pipeline(), params) != before, (blobs, params)
    changed = _pipeline()
    changed["stages"]["evaluate"]["cmd"] = "python ev.py --fast"
    assert identity.fingerprint(BLOBS, changed, PARAMS) != before
    changed = _pipeline()
    changed["stages"]["explain"]["cmd"] = "python explain.py --fast"
    assert identity.fingerprint(BLOBS, changed, PARAMS) == before


def test_an_input_outside_the_repository_or_untracked_is_refused_in_one_line(tmp_path):
    outside = _with({"prepare": {**PARAMS["prepare"], "raw": "/datasets/fer2013.csv"}})
    with pytest.raises(UserError, match=r"stage prep reads /datasets/fer2013\.csv, outside the"):
        identity.fingerprint(BLOBS, _pipeline(), outside, root=tmp_path)
    above = _with({"prepare": {**PARAMS["prepare"], "raw": "../fer2013.csv"}})
    with pytest.raises(UserError, match="outside the repository"):
        identity.fingerprint(BLOBS, _pipeline(), above, root=tmp_path)
    # spelt with `./` or as an absolute path inside the repository: the data still counts
    moved = BLOBS | {"data/raw/fer2013.csv.dvc": "x"}
    for raw in ("./data/raw/", str(tmp_path / "data/raw")):
        spelt = _with({"prepare": {**PARAMS["prepare"], "raw": raw}})
        first = identity.fingerprint(BLOBS, _pipeline(), spelt, root=tmp_path)
        assert identity.fingerprint(moved, _pipeline(), spelt, root=tmp_path) != first, raw
    untracked = _with({"prepare": {**PARAMS["prepare"], "raw": "datasets"}})
    with pytest.raises(UserError) as caught:
        identity.fingerprint(BLOBS, _pipeline(), untracked)
    assert "stage prep reads datasets, which neither git nor DVC tracks" in str(caught.value)
    assert "\n" not in str(caught.value)
    # a stage outside the run's closure may read what it likes: explain, the user's probes
    mine = _with({"explain": {"user_probes": "/home/me/faces"}})
    assert identity.fingerprint(BLOBS, _pipeline(), mine, root=tmp_path) == (
        identity.fingerprint(BLOBS, _pipeline(), PARAMS, root=tmp_path)
    )
    # a link inside the repository to data outside it: git would hold only the link
    (tmp_path / "linked").symlink_to(tmp_path.parent, target_is_directory=True)
    linked = _with({"prepare": {**PARAMS["prepare"], "raw": "linked"}})
    with pytest.raises(UserError, match="stage prep reads linked, outside the repository"):
        identity.fingerprint(BLOBS | {"linked": "9"}, _pipeline(), linked, root=tmp_path)
    # a whole data folder tracked by one pointer above the file the stage reads
    in_folder = _with({"prepare": {**PARAMS["prepare"], "raw": "data/raw/fer2013.csv"}})
    pointer = {k: v for k, v in BLOBS.items() if k != "data/raw/fer2013.csv.dvc"}
    first = identity.fingerprint(pointer | {"data/raw.dvc": "1"}, _pipeline(), in_folder)
    assert first != identity.fingerprint(pointer | {"data/raw.dvc": "2"}, _pipeline(), in_folder)
    # the data file itself, tracked by its pointer: the pointer's bytes count
    as_file = _with({"prepare": {**PARAMS["prepare"], "raw": "data/raw/fer2013.csv"}})
    first = identity.fingerprint(BLOBS, _pipeline(), as_file)
    assert identity.fingerprint(moved, _pipeline(), as_file) != first


def test_a_data_file_in_the_workspace_that_git_and_dvc_do_not_track_is_refused(tmp_path):
    root = tmp_path / "repo"
    (root / "data/raw").mkdir(parents=True)
    for name in ("prep.py", "ev.py", "cmp.py", "extra/public_test", "extra/private_test",
                 "data/raw/README.md"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    git(root, "init", "-q")
    git(root, "add", "-A")
    blobs = identity.workspace_blobs(root)
    pipeline = _pipeline()
    before = identity.workspace_fingerprint(blobs, pipeline, PARAMS, root)
    (root / "data/raw/fer2013.csv").write_text("emotion,pixels,Usage\n")  # copied in, no dvc add
    (root / "data/raw/notes.md").write_text("mine\n")
    with pytest.raises(UserError, match=r"data/raw/fer2013\.csv: a stage of the run reads it"):
        identity.workspace_fingerprint(blobs, pipeline, PARAMS, root)
    (root / "data/raw/fer2013.csv.dvc").write_text("outs:\n- md5: 0123\n  path: fer2013.csv\n")
    git(root, "add", "data/raw/fer2013.csv.dvc")  # as `dvc add` and the README say
    # what a stage wrote into a folder another stage reads is an output, never stray data
    (root / "metrics/eval").mkdir(parents=True)
    (root / "metrics/eval/baseline_public_test.json").write_text("{}")
    tracked = identity.workspace_blobs(root)
    after = identity.workspace_fingerprint(tracked, pipeline, PARAMS, root)
    assert after != before


# --- statistics -----------------------------------------------------------------------


def test_the_interval_holds_zero_for_identical_predictions():
    rng = np.random.default_rng(1)
    same = rng.integers(0, 2, size=(3, 1000))
    diff = paired_bootstrap(same, same.copy())
    assert diff.mean == 0 and diff.low <= 0 <= diff.high and diff.within_noise
    # seeds that disagree widen the interval but do not move it from 0 on average
    other = rng.integers(0, 2, size=(3, 1000))
    noisy = paired_bootstrap(other, same)
    assert noisy.high - noisy.low > 0.02


def test_the_interval_excludes_zero_when_a_row_is_right_on_100_more_faces():
    rng = np.random.default_rng(2)
    shared = rng.random(3589) < 0.6  # seeds agree on most faces, as trained models do
    flips = rng.random((3, 3589)) < 0.05
    reference = (shared ^ flips).astype(int)
    better = reference.copy()
    wrong = np.flatnonzero(reference.max(axis=0) == 0)[:100]  # wrong for every seed
    better[:, wrong] = 1  # now right: 100 more faces in every seed
    diff = paired_bootstrap(better, reference)
    assert (
        diff.mean == pytest.approx((better.sum() - reference.sum()) / reference.size)
        and not diff.within_noise
    )
    assert diff.low > 0
    unpaired_sd = np.sqrt(2 * 0.6 * 0.4 / 3589)  # what an unpaired test would see
    assert diff.high - diff.low < 2 * 1.96 * unpaired_sd  # pairing: a tighter interval


def test_mean_and_sample_std():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.60, 0.62, 0.64])
    assert mean == pytest.approx(0.62) and std == pytest.approx(0.02)


def test_an_older_summary_gives_missing_figures_not_a_key_error():
    figures = run_figures({"source": "real", "baseline": {"private": {"accuracy": 0.6}}})
    assert figures["private_accuracy"] == 0.6 and figures["public_accuracy"] is None
    assert figures["gflops"] is None and run_figures(None)["public_macro_f1"] is None


ONE = {**TWO, "factors": {"smooth": TWO["factors"]["smooth"]}}  # two rows


def _finished(tmp_path, spec_content, trained_in: dict[tuple[int, int], str]):
    """The spec's runs and a Result for each, its summary saying the precision it trained in
    (row, seed) -> precision, on the machine that implies, each right on the same faces."""
    spec = load_spec(_spec(tmp_path, spec_content), tmp_path / "params.yaml")
    runs = make_runs(spec, yaml.safe_load((tmp_path / "params.yaml").read_text()), (0, 1))
    found = []
    for run in runs:
        precision = trained_in[run.row.index, run.seed]
        metrics = {
            "source": "real",
            "machine": "CPU AVX512 + AMX, 2 threads"
            if precision == "bf16"
            else "CPU AVX2, 2 threads",
            "baseline": {
                "public": {"accuracy": 0.6 + run.seed / 100, "macro_f1": 0.5},
                "private": {"accuracy": 0.61, "macro_f1": 0.5},
                "precision": precision,
                "gflops": 0.01638,
            },
        }
        experiment = queue.Experiment(run.name, "1" * 40, "2" * 40, "T", run.resolved, metrics)
        correct = np.array([1, 0] * 50, dtype=np.uint8)
        found.append(Result(run, experiment, correct))
    return spec, runs, found


def test_runs_trained_in_different_precisions_are_never_pooled_or_compared(tmp_path):
    # train.precision: auto on two kinds of CPU: seed 0 of row 0 in bf16, the rest in fp32
    spec, runs, found = _finished(
        tmp_path, ONE, {(0, 0): "bf16", (0, 1): "fp32", (1, 0): "fp32", (1, 1): "fp32"}
    )
    rows = table_records(runs, found)
    assert rows[0]["status"] == "mixed precision" and "public_accuracy" not in rows[0]
    assert "bf16 and fp32" in rows[0]["not_pooled"]
    assert rows[0]["machines"] == ["CPU AVX2, 2 threads", "CPU AVX512 + AMX, 2 threads"]
    assert rows[1]["precision"] == "fp32" and rows[1]["public_accuracy"]["mean"] == 0.605
    assert "public_delta" not in rows[1] and "not pooled" in rows[1]["not_compared"]
    text = markdown(spec, rows)
    assert "**mixed**: bf16 / fp32" in text and "row 0: its runs trained in bf16 and fp32" in text
    note = precision_note(found)
    assert note.startswith("runs of this study that ask for train.precision: auto trained in ")
    assert "bf16 and fp32" in note
    # each row in one precision, but not the same one: pooled, not compared, not on the frontier
    spec, runs, found = _finished(
        tmp_path, ONE, {(0, 0): "bf16", (0, 1): "bf16", (1, 0): "fp32", (1, 1): "fp32"}
    )
    rows = table_records(runs, found)
    assert rows[0]["precision"] == "bf16" and "public_accuracy" in rows[1]
    assert rows[1]["not_compared"] == "row 0 trained in bf16, this row in fp32"
    assert "public_delta" not in rows[1] and precision_note(found) is not None
    assert [p.label for p in frontier_points(rows, "private")] == ["0 reference"]
    # one precision throughout: pooled and compared, no note
    _, runs, found = _finished(tmp_path, ONE, {(r, s): "fp32" for r in (0, 1) for s in (0, 1)})
    rows = table_records(runs, found)
    assert "public_delta" in rows[1] and precision_note(found) is None
    assert len(frontier_points(rows, "private")) == 2


def test_runs_on_fer2013_and_on_the_stand_in_are_never_pooled_or_compared(tmp_path):
    spec, runs, found = _finished(tmp_path, ONE, {(r, s): "fp32" for r in (0, 1) for s in (0, 1)})
    found[1].experiment.metrics["source"] = "synthetic"  # row 0, seed 1: no FER2013 there
    rows = table_records(runs, found)
    assert rows[0]["status"] == "mixed data" and "public_accuracy" not in rows[0]
    assert rows[0]["not_pooled"] == "its runs ran on real and synthetic data: not pooled"
    assert "not pooled" in rows[1]["not_compared"] and "public_delta" not in rows[1]
    for result in found[2:]:  # row 1 all synthetic, row 0 all real
        result.experiment.metrics["source"] = "synthetic"
    found[1].experiment.metrics["source"] = "real"
    rows = table_records(runs, found)
    assert rows[1]["not_compared"] == "row 0 ran on real data, this row on synthetic"
    assert "Data: real, synthetic." in markdown(spec, rows)


def test_a_row_that_asks_for_another_precision_is_compared_as_today(tmp_path):
    study = {"name": "prec", "base": {"train.precision": "bf16"}}
    study |= {"factors": {"fp32": {"train.precision": "fp32"}, "auto": {"train.precision": "auto"}}}
    study |= {"design": "one_at_a_time"}
    trained = {(0, 0): "bf16", (0, 1): "bf16", (1, 0): "fp32", (1, 1): "fp32"}
    _, runs, found = _finished(tmp_path, study, trained | {(2, 0): "fp32", (2, 1): "fp32"})
    assert precision_note(found) is None  # every run trained in what it asked for, or auto alone
    rows = table_records(runs, found)
    assert rows[1]["precision"] == "fp32" and "public_delta" in rows[1]
    assert "public_delta" in rows[2] and "not_compared" not in rows[2]  # auto against bf16


def test_an_older_record_without_a_recorded_precision_falls_back_on_its_params(tmp_path):
    _, runs, found = _finished(
        tmp_path,
        {**ONE, "base": {"train.precision": "bf16"}},
        {(r, s): "bf16" for r in (0, 1) for s in (0, 1)},
    )
    for result in found:
        del result.experiment.metrics["baseline"]["precision"]  # written before it was kept
    rows = table_records(runs, found)
    assert rows[0]["precision"] == "bf16" and "public_delta" in rows[1]


# --- the queue ------------------------------------------------------------------------


STATUS = """Task     Name       Created    Status
a1b2c3d  demo-0-s0  01:59 PM   Running
9f8e7d6  demo-0-s0  Dec 01     Success
5555555  demo-1-s0  02:01 PM   Queued

Worker status: 1 active, 0 idle
"""


def test_queue_status_keeps_every_task_of_a_name():
    assert parse_status(STATUS) == [
        Task("a1b2c3d", "demo-0-s0", "Running"),
        Task("9f8e7d6", "demo-0-s0", "Success"),
        Task("5555555", "demo-1-s0", "Queued"),
    ]


def test_a_passing_queue_status_failure_is_retried_and_a_lasting_one_reported():
    calls = []

    def flaky(fail_times):
        def status():
            calls.append(1)
            if len(calls) <= fail_times:
                raise UserError("dvc queue status failed: ERROR: unexpected error - Expecting")
            return subprocess.CompletedProcess([], 0, stdout=STATUS)

        return status

    assert queue.queue_tasks(attempts=3, pause=0, status=flaky(2)) == parse_status(STATUS)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(UserError, match="queue status failed"):
        queue.queue_tasks(attempts=3, pause=0, status=flaky(3))
    assert len(calls) == 3


class _Queue:
    """`dvc queue status` as a script of snapshots, one per poll (the last one repeats)."""

    def __init__(self, snapshots):
        self.snapshots, self.polls = snapshots, 0

    def __call__(self):
        snapshot = self.snapshots[min(self.polls, len(self.snapshots) - 1)]
        self.polls += 1
        return [Task(*entry) for entry in snapshot]


def _statuses(tasks: dict[str, Task]) -> dict[str, str]:
    return {name: task.status for name, task in tasks.items()}


def test_an_old_success_of_a_requeued_name_does_not_end_the_wait(capsys):
    old = ("old", "r-0", "Success")
    queue_ = _Queue(
        [
            [("new", "r-0", "Queued"), old],
            [("new", "r-0", "Running"), old],
            [("new", "r-0", "Running"), old],
            [("new", "r-0", "Success"), old],
        ]
    )
    states = wait_for(["r-0"], before={"old"}, poll=0, lost_after=60, tasks=queue_)
    assert states == {"r-0": Task("new", "r-0", "Success")} and queue_.polls == 4
    # a new failure beside an old success is a failure
    queue_ = _Queue([[("new", "r-0", "Running"), old], [("new", "r-0", "Failed"), old]])
    failed = wait_for(["r-0"], before={"old"}, poll=0, tasks=queue_)
    assert failed == {"r-0": Task("new", "r-0", "Failed")}  # its own log, not the old one's


def test_waiting_outlasts_a_row_missing_while_a_worker_takes_it(capsys):
    # seen on FER2013: between two experiments the next one was briefly in no list
    queue_ = _Queue(
        [
            [("t0", "r-0", "Running"), ("t1", "r-1", "Queued")],
            [("t0", "r-0", "Success")],
            [("t0", "r-0", "Success")],
            [("t0", "r-0", "Success"), ("t1", "r-1", "Running")],
            [("t0", "r-0", "Success"), ("t1", "r-1", "Success")],
        ]
    )
    states = wait_for(["r-0", "r-1"], before=set(), poll=0, lost_after=60, tasks=queue_)
    assert _statuses(states) == {"r-0": "Success", "r-1": "Success"} and queue_.polls == 5
    assert "2/2 experiments done" in capsys.readouterr().out


def test_a_worker_that_ends_while_runs_wait_is_replaced():
    # two workers asked for; one ends, and one task waits while one runs
    short = [("t0", "r-0", "Running"), ("t1", "r-1", "Queued"), ("t2", "r-2", "Queued")]
    queue_ = _Queue([short] * 4 + [[(t, n, "Success") for t, n, _ in short]])
    restarts = []
    states = wait_for(["r-0", "r-1", "r-2"], set(), poll=0, tasks=queue_, jobs=2,
                      restart=lambda: restarts.append(1), restart_after=0)  # fmt: skip
    assert len(restarts) >= 1 and _statuses(states)["r-2"] == "Success"
    # with as many running as asked for, nothing is restarted
    full = [("t0", "r-0", "Running"), ("t1", "r-1", "Running"), ("t2", "r-2", "Queued")]
    queue_ = _Queue([full] * 4 + [[(t, n, "Success") for t, n, _ in full]])
    restarts.clear()
    wait_for(["r-0", "r-1", "r-2"], set(), poll=0, tasks=queue_, jobs=2,
             restart=lambda: restarts.append(1), restart_after=0)  # fmt: skip
    assert restarts == []


def test_polling_slows_while_nothing_changes_and_speeds_up_on_a_change(monkeypatch):
    pauses = []
    monkeypatch.setattr(queue.time, "sleep", pauses.append)
    running, queued = [("t0", "r-0", "Running")], [("t0", "r-0", "Queued")]
    queue_ = _Queue([running] * 4 + [[("t0", "r-0", "Success")]])
    wait_for(["r-0"], set(), poll=2, max_poll=5, tasks=queue_)
    assert pauses == [2, 3, 4.5, 5]  # each unchanged poll waits half as long again, up to 5
    pauses.clear()
    queue_ = _Queue([queued, queued, running, running, [("t0", "r-0", "Success")]])
    wait_for(["r-0"], set(), poll=2, max_poll=5, tasks=queue_)
    assert pauses == [2, 3, 2, 3]  # the change to Running starts over at `poll`


def test_a_row_that_never_comes_back_is_reported_lost():
    queue_ = _Queue([[("t0", "r-0", "Success")]])
    states = wait_for(["r-0", "r-1"], set(), poll=0.01, lost_after=0.05, tasks=queue_)
    assert _statuses(states) == {"r-0": "Success", "r-1": "Lost"}


def test_jobs_share_the_cores_out_as_threads(tmp_path, monkeypatch):
    assert threads_per_job(1, 2) is None  # one job: params.yaml decides
    assert threads_per_job(2, 2) == 1 and threads_per_job(2, 16) == 8
    assert threads_per_job(4, 2) == 1
    spec = load_spec(_spec(tmp_path, TWO), tmp_path / "params.yaml")
    runs = make_runs(spec, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    calls = []
    monkeypatch.setattr(queue, "experiments", list)
    monkeypatch.setattr(queue, "queue_tasks", list)
    monkeypatch.setattr(queue, "head", lambda: "abc")
    monkeypatch.setattr(queue, "dvc", lambda *args, check=True: calls.append(args))
    assert queue.queue_runs(runs, threads=1) == ["demo-0-s0", "demo-1-s0", "demo-2-s0"]
    assert all("runtime.threads=1" in call for call in calls) and len(calls) == 3
    calls.clear()
    queue.queue_runs(runs[:1], threads=None)
    assert not any(str(arg).startswith("runtime.") for arg in calls[0])
    calls.clear()
    queue.queue_runs(runs[:1], threads=None, targets=["compare", "evaluate@a-b"])
    assert calls[0][-2:] == ("compare", "evaluate@a-b")


def test_a_run_reproduces_the_stages_that_write_what_the_table_reads():
    pipeline = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    targets = identity.table_targets(pipeline, params)
    evaluations = [f"evaluate@{m}-{s}" for m in ("baseline", "improved")
                   for s in ("private_test", "public_test")]  # fmt: skip
    assert targets == ["compare", *evaluations]
    # DVC's names for cells of booleans and lists (dvc/parsing: MatrixDefinition)
    stage = {"matrix": {"m": ["a", True], "opts": [[1], {"k": 2}]}}
    assert identity._cell_name("s", stage, {"m": True, "opts": {"k": 2}}) == "s@true-opts1"
    assert identity._cell_name("s", stage, {"m": "a", "opts": [1]}) == "s@a-opts0"
    assert identity._cell_name("s", {}, {}) == "s"
    assert identity.closure(pipeline, params).stages.keys() >= {"train", "improve", "cost"}


def _key(params: dict) -> str:
    """A stand-in run key: one per distinct params, as identity.fingerprint gives."""
    return hashlib.sha256(records.canonical(params).encode()).hexdigest()


def _fake_queue(monkeypatch, tmp_path, tasks_after):
    """A spec in tmp_path and a DVC queue that lists nothing until runs are queued."""
    monkeypatch.chdir(tmp_path)
    _spec(tmp_path, TWO)
    monkeypatch.setattr(cli, "match", lambda runs, found, key=None: {})
    monkeypatch.setattr(cli, "_fingerprints", lambda: _key)  # no git repository here
    monkeypatch.setattr(queue, "experiments", list)
    monkeypatch.setattr(queue, "start_workers", lambda jobs, threads: None)
    listed = []
    monkeypatch.setattr(queue, "queue_tasks", lambda: list(listed))
    monkeypatch.setattr(cli, "_table_targets", lambda params_path: ["compare"])  # no dvc.yaml

    def queue_runs(runs, threads, targets=()):
        listed.extend(tasks_after)
        return [r.name for r in runs]

    monkeypatch.setattr(queue, "queue_runs", queue_runs)
    return listed


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("during", ["wait", "queueing"])
def test_ctrl_c_says_what_still_runs_in_one_line(tmp_path, monkeypatch, capsys, during):
    old = Task("t0", "demo-1-s0", "Queued")  # another command's, listed before ours
    tasks = [Task("t1", "demo-1-s0", "Running"), Task("t2", "demo-2-s0", "Queued")]
    listed = _fake_queue(monkeypatch, tmp_path, tasks)
    listed.append(old)
    if during == "wait":
        monkeypatch.setattr(queue, "wait_for", _interrupt)
    else:  # Ctrl-C after two of three runs were queued

        def queue_two(runs, threads, targets=()):
            listed.extend(tasks)
            raise KeyboardInterrupt

        monkeypatch.setattr(queue, "queue_runs", queue_two)
    removed = []
    monkeypatch.setattr(queue, "dvc", lambda *args, check=True: removed.append(args))
    assert main(["spec.yaml"]) == 130
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    if during == "wait":  # workers run them: say so, and how to stop or collect them
        assert "2 experiment(s)" in err and "(demo-1-s0, demo-2-s0)" in err
        assert "dvc queue stop --kill" in err and "--collect-only" in err and not removed
    else:  # no worker started yet: what was queued is taken back (not another command's)
        assert "removed the 2 run(s) queued so far, nothing ran" in err
        assert removed == [("queue", "remove", "t1", "t2")]


def test_more_jobs_than_cores_warns_and_gives_one_thread_each(tmp_path, monkeypatch, capsys):
    _fake_queue(monkeypatch, tmp_path, [])
    monkeypatch.setattr(cli, "cores", lambda: 2)
    given = {}

    def queue_runs(runs, threads, targets=()):
        given["threads"], given["targets"] = threads, targets
        return [r.name for r in runs]

    monkeypatch.setattr(queue, "queue_runs", queue_runs)
    monkeypatch.setattr(queue, "wait_for", lambda names, before, **kwargs: {})
    assert main(["spec.yaml", "--jobs", "3"]) == 1  # no results: the fake ran nothing
    err = capsys.readouterr().err
    assert "warning: --jobs 3 on 2 cores" in err and given["threads"] == 1
    assert given["targets"] == ["compare"]  # the stages the table reads are what runs
    assert not (tmp_path / "ablation").exists()  # no result: not even a runs.json


# --- finished runs recorded in git: runs.json ------------------------------------------


def _record(seed: int, fingerprint: str = "a" * 64, name: str = "", hour: int = 10):
    experiment = queue.Experiment(
        name or f"demo-0-s{seed}", "1" * 40, "2" * 40, f"2026-12-04T{hour:02d}:0{seed}:00",
        {"train": {"seed": seed}}, {"baseline": {"public": {"accuracy": 0.5}}},
    )  # fmt: skip
    return records.Record({"train": {"seed": seed}}, fingerprint, experiment, "1001")


def test_records_only_grow_and_stand_only_for_their_params_on_their_stage_inputs(tmp_path):
    path = tmp_path / "ablation/demo/runs.json"
    assert records.load(path) == []
    assert records.save(path, [_record(0)]) == 1
    assert records.save(path, [_record(1)]) == 2  # another sitting's runs keep the first's
    assert records.save(path, [_record(1, name="again", hour=11)]) == 2  # the same run: newer
    assert records.save(path, [_record(1, name="older", hour=9)]) == 2  # an older one: not kept
    kept = records.load(path)
    assert kept == [_record(0), _record(1, name="again", hour=11)]  # every field read back
    assert records.find(kept, "a" * 64) == _record(1, name="again", hour=11)  # the newest
    assert records.find(kept, "b" * 64) is None  # another run key: other params or inputs
    stale = _record(0, fingerprint="b" * 64, name="older")
    assert records.save(path, [stale]) == 3  # kept beside: an older commit may match it


def test_the_committed_records_read_back_with_one_face_count_per_study():
    for path in sorted((PROJECT_ROOT / "ablation").glob("*/runs.json")):
        kept = records.load(path)
        assert kept, path
        assert len({len(r.public_correct or "") for r in kept}) == 1, path
        again = path.parent / "again.json"
        try:  # saving what was read writes the same bytes: re-collecting changes nothing
            records.save(again, kept)
            assert again.read_bytes() == path.read_bytes(), path
        finally:
            again.unlink(missing_ok=True)


def _one_run(**experiment) -> str:
    """runs.json with one record whose experiment fields are overridden."""
    fields = {"name": "x", "rev": "r", "baseline": "b", "timestamp": "t", "params": {}}
    record = {"params": {}, "fingerprint": "a" * 64, "public_correct": None}
    record["experiment"] = {**fields, "metrics": None, **experiment}
    return json.dumps({"version": 1, "runs": [record]})


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("{", "not valid JSON (line 1)"),
        ('{"runs": []}', "version: expected 1"),
        ('{"version": 1, "runs": [{"params": {}, "fingerprint": "x"}]}', "runs[0].fingerprint"),
        ('{"version": 1, "runs": {}}', "runs: expected a list"),
        ('{"version": 1, "runs": [{"params": 3}]}', "runs[0].params: expected a mapping"),
        (_one_run(timestamp=None), "runs[0].experiment.timestamp: expected a string"),
        (_one_run(metrics=[1]), "runs[0].experiment.metrics: expected a mapping or null"),
    ],
)
def test_a_damaged_runs_file_is_one_line_naming_it_and_nothing_is_queued(
    tmp_path, monkeypatch, capsys, content, where
):
    _fake_queue(monkeypatch, tmp_path, [])
    queued = []
    monkeypatch.setattr(queue, "queue_runs", lambda runs, threads, **kw: queued.append(runs))
    (tmp_path / "ablation/demo").mkdir(parents=True)
    (tmp_path / "ablation/demo/runs.json").write_text(content)
    assert main(["spec.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ablation/demo/runs.json: ") and where in err
    assert "\n" not in err and not queued
    assert (tmp_path / "ablation/demo/runs.json").read_text() == content  # left as it was


def test_of_a_record_and_an_experiment_for_one_run_the_newer_stands(tmp_path, monkeypatch):
    spec = load_spec(_spec(tmp_path, TWO), tmp_path / "params.yaml")
    runs = make_runs(spec, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    monkeypatch.setattr(cli, "_fingerprints", lambda: _key)

    def result(run, hour, fingerprint=None):
        experiment = queue.Experiment(f"e{hour}", "1" * 40, "2" * 40, f"T{hour:02d}", {}, {})
        return records.Record(run.resolved, fingerprint or _key(run.resolved), experiment, None)

    first, second, third = runs
    kept = [result(first, 9), result(second, 11), result(third, 11, fingerprint="b" * 64)]
    matched = {first.name: result(first, 10), second.name: result(second, 10)}
    done = cli.with_records(runs, kept, matched)
    assert done[first.name] is matched[first.name]  # the experiment, newer than the record
    assert done[second.name] is kept[1]  # the record, newer than the experiment here
    assert third.name not in done  # a record of other stage inputs stands for nothing
    assert cli.with_records(runs, [], matched) == matched


# --- the figure -----------------------------------------------------------------------


def test_the_frontiers_label_rows_by_what_they_switch_on_with_error_bars():
    def figure(mean, std=0.01):
        return {"mean": mean, "std": std}

    records = [
        {"row": 0, "label": "reference", "seeds": [0, 1], "runs": [],
         "gflops": figure(0.006, 0), "public_accuracy": figure(0.58),
         "private_accuracy": figure(0.59), "tta": "flip", "tta_gflops": 0.012,
         "public_tta_accuracy": figure(0.59), "private_tta_accuracy": figure(0.61)},
        {"row": 1, "label": "+ema", "seeds": [0], "runs": [], "gflops": figure(0.006, 0),
         "public_accuracy": figure(0.5805, 0), "private_accuracy": figure(0.5949, 0)},
        {"row": 2, "label": "+sgd", "seeds": [], "runs": [], "status": "incomplete"},
    ]  # fmt: skip
    public = frontier_points(records, "public")
    assert [p.label for p in public] == ["0 reference", "1 +ema"]
    assert public[0].error == pytest.approx(1.0) and public[1].error is None  # one seed
    assert public[0].tta_gflops == 0.012 and public[0].tta_accuracy == pytest.approx(59.0)
    private = frontier_points(records, "private")
    assert private[1].accuracy == pytest.approx(59.49)
    offsets = label_offsets([(p.gflops, p.accuracy) for p in public], gap=0.5)
    assert offsets[0] != offsets[1]  # 58.00 % and 58.05 % at one cost: two lines, not one blot


def test_pareto_front_keeps_what_nothing_beats_on_cost_and_accuracy():
    points = [(1.0, 60.0), (0.5, 62.0), (2.0, 65.0), (3.0, 64.0), (0.5, 50.0)]
    assert pareto(points) == [(0.5, 62.0), (2.0, 65.0)]


# --- through DVC: a toy stage with ferx's params, so that many experiments stay fast -------

TOY_STAGE = """
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
t = p["train"]
n = 200
acc = 0.5 + 0.02 * t["seed"] + (0.1 if not t["augment"]["hflip"] else 0)
acc += 100 * float(t["weight_decay"]) + 0.01 * float(t["augment"]["rotate_deg"])
right = round(acc * n)
os.makedirs("metrics/eval", exist_ok=True)
split = {"accuracy": round(right / n, 4), "macro_f1": round(right / n - 0.1, 4)}
model = {"public": split, "private": {"accuracy": round(right / n + 0.01, 4),
         "macro_f1": 0.4}, "gflops": 0.006, "efficiency": 100.0, "train_minutes": 0.1}
json.dump({"source": "synthetic", "baseline": model}, open("metrics/summary.json", "w"))
json.dump({"correct": "1" * right + "0" * (n - right)},
          open("metrics/eval/baseline_public_test.json", "w"))
"""
TOY_PIPELINE = {
    "stages": {
        "toy": {
            "cmd": "python toy.py",
            "deps": ["toy.py", "${prepare.raw}"],
            "params": ["train"],
            "outs": [{"metrics/eval/baseline_public_test.json": {"cache": False}}],
            "metrics": [{"metrics/summary.json": {"cache": False}}],
        },
        # what only shows results (as explain does): outside every run's identity
        "show": {
            "cmd": "python show.py",
            "deps": ["show.py", "data/user_probes", "metrics/summary.json"],
            "params": ["explain"],
            "outs": [{"plots/show.txt": {"cache": False}}],
        },
    }
}
SHOW_STAGE = """import os
os.makedirs("plots", exist_ok=True)
open("plots/show.txt", "w").write(str(sorted(os.listdir("data/user_probes"))))
"""
# written as a user would: PyYAML reads `1e-3` (no dot) as a string, DVC stores 0.001
TOY_SPEC = """name: toy
seeds: [0, 1]
factors:
  wd: {train.weight_decay: 1e-3}
  no_flip: {train.augment.hflip: false}
"""


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    root = tmp_path / "toy"
    (root / "data/raw").mkdir(parents=True)
    (root / "data/raw/README").write_text("the FER2013 file goes here\n")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    (root / "toy.py").write_text(TOY_STAGE)
    (root / "show.py").write_text(SHOW_STAGE)
    (root / "data/user_probes").mkdir()
    (root / "data/user_probes/README.md").write_text("your faces\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump(TOY_PIPELINE, sort_keys=False))
    (root / "spec.yaml").write_text(TOY_SPEC)
    # a factor that restates a default: its rows resolve like row 0's, one experiment for both
    (root / "same.yaml").write_text(
        "name: same\nbase: {train.epochs: 7}\nfactors:\n  smooth: {train.label_smoothing: 0.1}\n"
    )
    git(root, "init", "-q")
    git(root, "config", "user.email", "ci@example.com")
    git(root, "config", "user.name", "ci")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    dvc(root, "config", "core.analytics", "false")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "toy pipeline")
    monkeypatch.chdir(root)
    return root


def _shown(root) -> dict[str, dict]:
    """experiment name -> its summary.json, from `dvc exp show --json -A` (every commit)."""
    found = {}
    for commit in json.loads(dvc(root, "exp", "show", "--json", "-A").stdout):
        for group in commit.get("experiments") or []:
            for entry in group["revs"]:
                found[entry["name"]] = entry["data"]["metrics"]["metrics/summary.json"]["data"]
    return found


def _commit_all(root, message):
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.mark.slow
def test_results_survive_commits_and_only_a_change_of_what_stages_read_reruns(toy, capsys):
    assert main(["spec.yaml"]) == 0
    out = capsys.readouterr().out
    assert "6 runs (3 rows x 2 seeds), 0 already done, 6 queued" in out
    table = json.loads((toy / "ablation/toy/table.json").read_text())
    shown = _shown(toy)
    assert len(shown) == 6
    for record in table:
        names = [run["experiment"] for run in record["runs"]]
        assert len(names) == 2 and record["seeds"] == [0, 1]
        for key, split in (("public_accuracy", "public"), ("private_accuracy", "private")):
            values = [shown[n]["baseline"][split]["accuracy"] for n in names]
            mean, std = np.mean(values), np.std(values, ddof=1)
            assert record[key]["mean"] == pytest.approx(mean)
            assert record[key]["std"] == pytest.approx(std)
    # toy accuracies: 0.5 + 0.02 seed, +0.1 (wd 1e-3), +0.1 (no flip): 20 / 40 faces of 200
    assert table[1]["public_delta"]["mean"] == pytest.approx(0.1)
    assert not table[1]["public_delta"]["within_noise"]
    first = (toy / "ablation/toy/table.md").read_text()
    assert yaml.safe_load(TOY_SPEC)["factors"]["wd"]["train.weight_decay"] == "1e-3"
    assert "outside noise" in first and "| 0 reference | N | N | 2 |" in first

    # commit the table (and a README): nothing is lost, nothing reruns
    (toy / "README.md").write_text("results\n")
    _commit_all(toy, "the ablation table")
    assert main(["spec.yaml", "--collect-only"]) == 0
    assert (toy / "ablation/toy/table.md").read_text() == first
    capsys.readouterr()
    assert main(["spec.yaml"]) == 0  # `1e-3` is matched as 0.001 too: nothing queued
    assert "6 already done, 0 queued" in capsys.readouterr().out

    # a user probe, an edited data README, the showing stage's code and params: nothing reruns
    (toy / "data/user_probes/happy.png").write_bytes(b"\x89PNG not really")
    (toy / "data/raw/README").write_text("the FER2013 file goes here; see the docs\n")
    (toy / "show.py").write_text(SHOW_STAGE + "# changed\n")
    _commit_all(toy, "a user probe, a note, the show stage")
    assert main(["spec.yaml"]) == 0
    assert "6 already done, 0 queued" in capsys.readouterr().out

    # a param no row sets: every run is stale, and the previous table stays until all rerun
    params = yaml.safe_load((toy / "params.yaml").read_text())
    params["train"]["augment"]["rotate_deg"] = 5.0
    (toy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _commit_all(toy, "rotate 5")
    capsys.readouterr()
    assert main(["spec.yaml", "--collect-only"]) == 1
    captured = capsys.readouterr()
    assert "6 of 6 runs have no results" in captured.err
    assert (toy / "ablation/toy/table.md").read_text() == first  # kept, not marked failed

    # the same params again on a new commit: the old experiments stand for the runs again
    params["train"]["augment"]["rotate_deg"] = 10.0
    (toy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _commit_all(toy, "rotate back")
    assert main(["spec.yaml", "--collect-only"]) == 0

    # two rows with the same resolved params: one experiment stands for both
    capsys.readouterr()
    assert main(["same.yaml"]) == 0
    out = capsys.readouterr().out
    assert "2 runs (2 rows x 1 seeds), 0 already done, 1 queued (1 with the params" in out
    same = json.loads((toy / "ablation/same/table.json").read_text())
    assert [r["runs"][0]["experiment"] for r in same] == ["same-0-s0", "same-0-s0"]
    # dvc.yaml counts by its stages, not its bytes: a comment makes nothing stale
    with (toy / "dvc.yaml").open("a") as pipeline:
        pipeline.write("# a comment\n")
    _commit_all(toy, "a comment in dvc.yaml")
    assert main(["spec.yaml", "--collect-only"]) == 0

    # a stage's code changes: stale again
    (toy / "toy.py").write_text(TOY_STAGE + "# changed\n")
    assert main(["spec.yaml", "--collect-only"]) == 1
    (toy / "toy.py").write_text(TOY_STAGE)
    # and the data (a `dvc add`-style pointer beside the data folder's files)
    # (untracked files do not reach a queued experiment: only once git tracks it does it count)
    (toy / "data/raw/fer2013.csv.dvc").write_text("outs:\n- md5: 0123\n  path: fer2013.csv\n")
    assert main(["spec.yaml", "--collect-only"]) == 0
    git(toy, "add", "data/raw/fer2013.csv.dvc")
    assert main(["spec.yaml", "--collect-only"]) == 1


@pytest.mark.slow
def test_a_study_goes_on_in_another_clone_from_its_committed_records(
    toy, tmp_path, monkeypatch, capsys
):
    # first sitting: seed 0 only; its runs are recorded, and the record is committed
    assert main(["spec.yaml", "--seeds", "0"]) == 0
    assert "ablation/toy/runs.json holds 3 record(s)" in capsys.readouterr().out
    _commit_all(toy, "seed 0 of the toy study")
    other = tmp_path / "other"  # a clone: git leaves DVC's experiment refs behind
    subprocess.run(["git", "clone", "-q", str(toy), str(other)], check=True)
    git(other, "config", "user.email", "ci@example.com")
    git(other, "config", "user.name", "ci")
    monkeypatch.chdir(other)
    assert queue.experiments() == []
    # second sitting, in the clone: the records stand for seed 0, only seed 1 runs
    assert main(["spec.yaml"]) == 0
    out = capsys.readouterr().out
    assert "6 runs (3 rows x 2 seeds), 3 already done, 3 queued" in out
    assert "3 of this spec's runs stand on those alone" in out
    assert len(records.load(other / "ablation/toy/runs.json")) == 6
    table = json.loads((other / "ablation/toy/table.json").read_text())
    # the same table as one sitting in the first clone makes (names, figures, intervals)
    monkeypatch.chdir(toy)
    capsys.readouterr()
    assert main(["spec.yaml"]) == 0
    assert "stand on those alone" not in capsys.readouterr().out  # its experiments stand
    assert json.loads((toy / "ablation/toy/table.json").read_text()) == table
    # a stage's code changes in the clone: its records stand for nothing, nor its experiments
    monkeypatch.chdir(other)
    (other / "toy.py").write_text(TOY_STAGE + "# changed\n")
    capsys.readouterr()
    assert main(["spec.yaml", "--collect-only"]) == 1
    assert "6 of 6 runs have no results" in capsys.readouterr().err


@pytest.mark.slow
def test_ablation_end_to_end_through_the_real_pipeline(tmp_path, monkeypatch, capsys):
    root = make_dvc_project(
        tmp_path,
        {
            "prepare": {"synthetic": {"n_samples": 120}},
            "train": {"epochs": 1, "batch_size": 32},
            "improve": {"epochs": 1},
            "evaluate": {"tta": "flip"},
            "runtime": {"threads": 1},
        },
    )
    monkeypatch.chdir(root)
    # a bad spec queues nothing
    (root / "bad.yaml").write_text(yaml.safe_dump({**TWO, "factors": {"x": {"train.lrr": 1}}}))
    assert main(["bad.yaml"]) == 2
    assert "train.lrr: unknown key" in capsys.readouterr().err
    assert queue.queue_tasks() == []

    spec = {"name": "demo", "base": {"train.epochs": 1}, "factors": {"no_flip": {}}}
    spec["factors"]["no_flip"] = {"train.augment.hflip": False}
    (root / "two.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["two.yaml"]) == 0
    # the progress line shows up while experiments run, not only once they are all done
    assert re.search(r"ablate: [0-1]/2 experiments done", capsys.readouterr().out)
    table = json.loads((root / "ablation/demo/table.json").read_text())
    shown = _shown(root)
    for record in table:
        (run,) = record["runs"]
        summary = shown[run["experiment"]]["baseline"]
        assert record["private_accuracy"]["mean"] == summary["private"]["accuracy"]
        assert record["public_tta_accuracy"]["mean"] == summary["public"]["tta_accuracy"]
        assert record["gflops"]["mean"] == summary["gflops"]
    # the evaluate stage recorded which faces were right: the interval is there
    delta = table[1]["public_delta"]
    assert delta["low"] <= delta["mean"] <= delta["high"]
    public = json.loads(git(root, "show", f"{_rev(root, 'demo-0-s0')}:{cli.PUBLIC_EVAL}"))
    assert set(public["correct"]) <= {"0", "1"}
    assert (
        round(public["correct"].count("1") / len(public["correct"]), 4)
        == (shown["demo-0-s0"]["baseline"]["public"]["accuracy"])
    )
    assert (root / "ablation/demo/frontier.png").read_bytes()[:4] == b"\x89PNG"
    # a run reproduced what the table reads and what is upstream of it; explain and report,
    # which only present, did not run
    listed = git(root, "ls-tree", "-r", "--name-only", _rev(root, "demo-0-s0")).split()
    assert "metrics/summary.json" in listed and "metrics/cost.json" in listed
    assert not [p for p in listed if p.startswith(("metrics/explain/", "report/"))]


def _rev(root, name: str) -> str:
    refs = git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/")
    return next(line.split()[0] for line in refs.splitlines() if line.endswith(f"/{name}"))


def test_the_report_stage_reads_results_and_tables_but_is_no_part_of_a_runs_identity():
    pipeline = {
        "stages": {
            "train": {"cmd": "x", "deps": ["train.py"], "outs": ["metrics"]},
            "report": {"cmd": "y", "deps": ["report.py", "ablation", "metrics"], "outs": ["r"]},
        }
    }
    assert identity.stage_inputs(pipeline, {}) == ["train.py"]
    blobs = {"train.py": "1", "ablation/recipe/table.md": "2", "report.py": "3"}
    changed = {**blobs, "ablation/recipe/table.md": "4", "report.py": "5"}
    assert identity.fingerprint(blobs, pipeline, {}) == identity.fingerprint(changed, pipeline, {})
    assert identity.fingerprint(blobs, pipeline, {}) != identity.fingerprint(
        {**blobs, "train.py": "9"}, pipeline, {}
    )


def test_on_the_real_pipeline_probes_explanations_and_the_report_leave_runs_standing():
    # the case: a new user probe, a new probe seed, an edited data README or
    # explain's code made every finished run of a four-hour study stand for nothing
    pipeline = identity.parse_pipeline((PROJECT_ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    blobs = identity.workspace_blobs(PROJECT_ROOT)
    before = identity.fingerprint(blobs, pipeline, params, PROJECT_ROOT)

    def seen(blobs=blobs, **update) -> str:
        changed = json.loads(json.dumps(params))
        for dotted, value in update.items():
            *path, key = dotted.split("__")
            node = changed
            for part in path:
                node = node[part]
            node[key] = value
        return identity.fingerprint(blobs, pipeline, changed, PROJECT_ROOT)

    assert seen(prepare__probes__seed=9) == before
    assert seen(explain__user_probes="my_faces") == before
    assert seen(evaluate__tta="flip") != before  # the table has TTA columns
    assert seen(improve__beta=0.9999) != before
    assert seen(train__lr=0.002) != before
    for path, same in (
        ("data/user_probes/happy.png", True),
        ("data/raw/README.md", True),
        ("stages/explain.py", True),
        ("stages/probes.py", True),
        ("ferx/analysis/report.py", True),
        ("stages/train.py", False),
        ("ferx/training/class_weights.py", False),
        ("ferx/analysis/cost.py", False),
    ):
        assert (seen({**blobs, path: "0" * 40}) == before) is same, path


def test_a_committed_table_is_labelled_current_only_while_its_runs_keys_are_todays(tmp_path):
    from ferx.experiments.freshness import study_freshness

    root = tmp_path / "repo"
    for name in ("prep.py", "ev.py", "cmp.py", "explain.py", "extra/public_test",
                 "extra/private_test", "data/raw/README.md"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    (root / "dvc.yaml").write_text(yaml.safe_dump(_pipeline()))
    (root / "ablations").mkdir()
    (root / "ablations/demo.yaml").write_text(yaml.safe_dump(TWO))
    git(root, "init", "-q")
    git(root, "add", "-A")
    runs = make_runs(load_spec(root / "ablations/demo.yaml", root / "params.yaml"),
                     yaml.safe_load((root / "params.yaml").read_text()), seeds=(0,))  # fmt: skip
    blobs = identity.workspace_blobs(root)
    pipeline = _pipeline()
    kept = [
        records.Record(
            run.resolved,
            identity.fingerprint(blobs, pipeline, run.resolved, root),
            queue.Experiment(run.name, "1" * 40, "2" * 40, "T", {}, {}),
            None,
        )
        for run in runs
    ]
    records.save(root / "ablation/demo/runs.json", kept)
    rows = [{"row": i, "seeds": [0]} for i in range(len({r.row.index for r in runs}))]
    (root / "ablation/demo/table.json").write_text(json.dumps(rows))

    def state() -> str:
        git(root, "add", "-A")
        found = study_freshness("demo", root=root)
        assert "\n" not in found.note
        return found.state + ": " + found.note

    assert state().startswith(f"current: current: each of its {len(runs)} runs")
    (root / "explain.py").write_text("changed")  # what only explains: still today's
    (root / "data/raw/README.md").write_text("changed")
    assert state().startswith("current")
    (root / "ev.py").write_text("changed")  # what the table's figures come from: stale
    assert f"stale: {len(runs)} of its {len(runs)} runs" in state()
    (root / "ev.py").write_text("ev.py")
    assert state().startswith("current")
    (root / "ablations/demo.yaml").unlink()
    assert state().startswith("unknown: freshness unknown: ")


def test_records_keep_each_models_per_face_predictions_and_refuse_a_damaged_entry(tmp_path):
    path = tmp_path / "ablation/demo/runs.json"
    faces = {
        "baseline": {"correct": "101", "predicted": "326", "tta_correct": "111"},
        "improved": {"correct": "100", "predicted": "321", "tta_predicted": "320"},
    }
    recall = {"improved": {"private_test": {"disgust": 0.6, "fear": 0.5}}}
    record = dataclasses.replace(_record(0), faces=faces, recall=recall)
    records.save(path, [record, _record(1, fingerprint="b" * 64)])
    kept = records.load(path)
    assert kept[0] == record and kept[1].faces is None  # an older record: no faces
    data = json.loads(path.read_text())
    for damaged in ({"improved": {"private_test": {"fear": 1.5}}}, {"best": {}}, [0.5]):
        data["runs"][0]["recall"] = damaged
        path.write_text(json.dumps(data))
        with pytest.raises(UserError, match=r"runs\[0\]\.recall: expected"):
            records.load(path)
    data["runs"][0]["recall"] = recall
    for damaged in ({"baseline": {"predicted": "397"}}, {"other": {"correct": "1"}},
                    {"improved": {"logits": "1"}}, ["101"]):  # fmt: skip
        data["runs"][0]["faces"] = damaged
        path.write_text(json.dumps(data))
        with pytest.raises(UserError, match=r"runs\[0\]\.faces: expected"):
            records.load(path)


def test_a_study_of_improve_reports_the_improved_model_and_its_gain_over_its_own_baseline(
    tmp_path,
):
    spec = load_spec(_spec(tmp_path, {**ONE, "model": "improved"}), tmp_path / "params.yaml")
    runs = make_runs(spec, yaml.safe_load((tmp_path / "params.yaml").read_text()), (0, 1))
    found = []
    for run in runs:
        gain = 0.02 * run.row.index + 0.01 * run.seed  # row 1 gains 2 and 3 points
        summary = {"accuracy": 0.65, "macro_f1": 0.60}
        # row 1 also chose offsets on PublicTest: out of sample they lose 0.4 and 0.8 points
        out_of_sample = {"macro_f1_cross_fitted": 0.596 - 0.004 * run.seed} if run.row.index else {}
        metrics = {
            "source": "real",
            "baseline": {"public": summary, "private": summary, "precision": "fp32"},
            "improved": {
                "public": {"accuracy": 0.64, "macro_f1": 0.60 + gain, **out_of_sample},
                "private": {"accuracy": 0.645, "macro_f1": 0.60 + gain / 2},
                "precision": "fp32",
            },
        }
        recall = {
            "baseline": {"private_test": {"disgust": 0.45, "fear": 0.40}},
            "improved": {"private_test": {"disgust": 0.45 + gain, "fear": 0.40}},
        }
        experiment = queue.Experiment(run.name, "1" * 40, "2" * 40, "T", run.resolved, metrics)
        correct = np.array([1, 0] * 50, dtype=np.uint8)
        found.append(Result(run, experiment, correct, "improved", recall))
    rows = table_records(runs, found)
    assert rows[1]["public_macro_f1"]["mean"] == pytest.approx(0.625)  # the improved model's
    gain = rows[1]["public_macro_f1_gain"]
    assert gain["mean"] == pytest.approx(0.025) and gain["min"] == pytest.approx(0.02)
    assert rows[1]["private_accuracy_gain"]["mean"] == pytest.approx(-0.005)
    assert rows[1]["private_disgust_recall_gain"]["mean"] == pytest.approx(0.025)
    assert rows[1]["private_fear_recall_gain"]["mean"] == pytest.approx(0.0)
    cross_fitted = rows[1]["public_macro_f1_cross_fitted_gain"]
    assert cross_fitted["mean"] == pytest.approx(-0.006)
    assert cross_fitted["min"] == pytest.approx(-0.008)
    assert "public_macro_f1_cross_fitted_gain" not in rows[0]  # no offsets, no such figure
    text = markdown(spec, rows)
    assert "the improved model of each experiment" in text
    assert "(worst seed) [95% CI] | the same, cross-fitted (worst seed) |" in text
    assert "| +2.50 (+2.00) | -0.60 (-0.80) | +1.25 | -0.50 | +2.50 / +0.00 |" in text
    # a study whose runs recorded no cross-fitted figure has no such column
    plain = [{k: v for k, v in r.items() if k != "public_macro_f1_cross_fitted_gain"} for r in rows]
    assert "cross-fitted (worst seed)" not in markdown(spec, plain)
    # a study of the baseline shows no gain columns
    assert "improve's gain" not in markdown(dataclasses.replace(spec, model="baseline"), rows)
    bad = _spec(tmp_path, {**ONE, "model": "best"})
    with pytest.raises(SpecError, match="model: must be one of baseline, improved"):
        load_spec(bad, tmp_path / "params.yaml")


def test_the_gain_bootstrap_recomputes_macro_f1_and_recall_from_the_predictions():
    from sklearn.metrics import f1_score, recall_score

    from ferx.experiments.stats import paired_gain_bootstrap

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 2000)

    def model(skill: float) -> np.ndarray:  # (2 seeds, faces): right with chance `skill`
        right = rng.random((2, len(labels))) < skill
        return np.where(right, labels, rng.integers(0, 7, (2, len(labels))))

    better, worse = model(0.7), model(0.5)
    found = paired_gain_bootstrap(better, worse, labels, 7, replicates=500)

    def score(fn, predicted, **kwargs):
        return np.mean([fn(labels, p, labels=list(range(7)), zero_division=0, **kwargs)
                        for p in predicted], axis=0)  # fmt: skip

    expected = score(f1_score, better, average="macro") - score(f1_score, worse, average="macro")
    assert found["macro_f1"].mean == pytest.approx(expected)
    recall = score(recall_score, better, average=None) - score(recall_score, worse, average=None)
    assert found["recall_1"].mean == pytest.approx(recall[1])
    assert not found["macro_f1"].within_noise and found["macro_f1"].low > 0
    same = paired_gain_bootstrap(better, better, labels, 7, replicates=200)["macro_f1"]
    assert same.mean == same.low == same.high == 0.0  # the same predictions: no difference
    with pytest.raises(ValueError, match="not the same runs and faces"):
        paired_gain_bootstrap(better, worse[:1], labels, 7)


def test_a_study_of_improve_gets_its_gain_interval_and_tta_deltas_from_the_records(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 400)
    spec = load_spec(_spec(tmp_path, {**ONE, "model": "improved"}), tmp_path / "params.yaml")
    runs = make_runs(spec, yaml.safe_load((tmp_path / "params.yaml").read_text()), (0, 1))

    def text(values) -> str:
        return "".join(str(int(v)) for v in values)

    found = []
    for run in runs:
        skill = 0.5 + 0.25 * run.row.index  # row 1's improve is much better than its baseline
        faces = {}
        for model, chance in (("baseline", 0.5), ("improved", skill)):
            predicted = np.where(rng.random(len(labels)) < chance, labels, (labels + 1) % 7)
            faces[model] = {"correct": text(predicted == labels), "predicted": text(predicted),
                            "tta_correct": text(predicted == labels)}  # fmt: skip
        summary = {"accuracy": 0.6, "macro_f1": 0.6}
        metrics = {"source": "real", "baseline": {"public": summary, "precision": "fp32"},
                   "improved": {"public": {**summary, "macro_f1": 0.6 + skill - 0.5},
                                "precision": "fp32"}}  # fmt: skip
        experiment = queue.Experiment(run.name, "1" * 40, "2" * 40, "T", run.resolved, metrics)
        correct = correct_from_text(faces["improved"]["correct"])
        found.append(Result(run, experiment, correct, "improved", None, faces))
    rows = table_records(runs, found, labels)
    gain = rows[1]["public_macro_f1_gain"]
    assert gain["low"] > 0 and not gain["within_noise"]  # improve's gain, outside the noise
    assert rows[1]["public_tta_delta"]["low"] > 0  # row 1 vs row 0, from the TTA results
    assert "low" not in table_records(runs, found)[1]["public_macro_f1_gain"]  # no labels
    assert f"[{100 * gain['low']:+.2f}, {100 * gain['high']:+.2f}]" in markdown(spec, rows)

    # the labels come from this workspace's prepared split, only if the runs classified it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/prepared").mkdir(parents=True)
    np.savez(tmp_path / "data/prepared/public_test.npz", x=np.zeros((400, 2, 2)), y=labels)
    assert np.array_equal(cli.public_labels(found, tmp_path / "params.yaml"), labels)
    np.savez(tmp_path / "data/prepared/public_test.npz", x=np.zeros((400, 2, 2)), y=labels[::-1])
    assert cli.public_labels(found, tmp_path / "params.yaml") is None


def test_a_table_without_records_is_of_unknown_freshness_not_stale(tmp_path):
    from ferx.experiments.freshness import study_freshness

    (tmp_path / "ablation/old").mkdir(parents=True)
    (tmp_path / "ablation/old/table.json").write_text("[]")
    found = study_freshness("old", root=tmp_path)
    assert found.state == "unknown" and "no records (runs.json)" in found.note
