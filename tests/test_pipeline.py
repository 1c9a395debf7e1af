"""The real `dvc` CLI on the synthetic default, in a temporary git repo."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from ferx.analysis.compare import selection_note
from ferx.analysis.model_card import parse_front_matter
from ferx.data.synthetic import make_synthetic_fer, to_csv_text
from ferx.labels import CLASS_NAMES
from ferx.models.checkpoint import load_state
from ferx.training.precision import resolve_precision
from tests.browser import CHROMIUM, drawn_divs, offline_dom
from tests.conftest import dvc, git, make_dvc_project, stages_run

TINY = {"prepare": {"synthetic": {"n_samples": 120}}}
pytestmark = pytest.mark.slow


def test_prepare_runs_once_then_only_on_change(tmp_path):
    root = make_dvc_project(tmp_path, TINY)
    first = dvc(root, "repro", "prepare")
    assert stages_run(first.stdout) == ["prepare"]
    assert json.loads((root / "metrics/prepare.json").read_text())["source"] == "synthetic"
    assert stages_run(dvc(root, "repro", "prepare").stdout) == []

    dvc(root, "exp", "run", "-S", "prepare.synthetic.seed=7", "prepare")
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
    "train": {"epochs": 3, "batch_size": 32},
    "runtime": {"threads": 1},
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
    # "how" settings rerun nothing: a thread count or an inference batch is not a new run
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["runtime"] |= {"threads": 2, "eval_batch_size": 16}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "up to date" in dvc(root, "status", "train").stdout
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
    assert set(ran) == {"prepare", "train", "improve_init", "improve", "compare", "cost"} | {
        "probes",
        "plots_page",
        "report",
    } | (EXPLAIN | EVALUATE | EXPORT)
    # the report: one offline page and a model card, from this run's files
    summary = json.loads((root / "metrics/summary.json").read_text())
    # train.precision: auto as it resolved on this machine, in the table dvc exp show lists
    ran = resolve_precision("auto", torch.device("cpu")).precision
    assert ran in ("fp32", "bf16")
    assert summary["baseline"]["precision"] == summary["improved"]["precision"] == ran
    assert summary["machine"].startswith("CPU ")
    card = parse_front_matter((root / "report/model_card.md").read_text())
    for entry, model in zip(card["model-index"], ("baseline", "improved"), strict=True):
        accuracy = entry["results"][0]["metrics"][0]["value"]
        assert accuracy == summary[model]["private"]["accuracy"]
    page = (root / "report/index.html").read_text()
    assert "SYNTHETIC stand-in" in page and "<script" not in page
    assert "activations_test2.png" in page  # the layer activations of explain
    if CHROMIUM is not None:
        dom, errors = offline_dom(root / "report/index.html")
        assert errors == [] and '<section id="cost">' in dom
    # a fresh clone's run modifies no tracked file: no stale outputs are committed
    changed = [line for line in git(root, "status", "--porcelain").splitlines()]
    assert not [line for line in changed if not line.startswith("??")], changed
    assert "?? dvc.lock" in changed  # what there is to commit is what DVC made
    for model in ("baseline", "improved"):
        for split in ("public_test", "private_test"):
            report = json.loads((root / f"metrics/eval/{model}_{split}.json").read_text())
            assert report["source"] == "synthetic" and report["model"] == model
            assert (root / f"plots/eval/{model}_{split}/confusion.png").exists()
    compared = json.loads((root / "metrics/compare.json").read_text())
    for split in ("public", "private"):
        assert len(compared[split]["delta"]["recall"]) == 7
        improve = json.loads((root / "metrics/improve.json").read_text())
        assert compared[split]["improved"]["accuracy"] == pytest.approx(
            improve[split]["accuracy"]
        )  # compare reads the evaluations of the very model improve kept
    table = (root / "plots/compare/table.md").read_text()
    assert "PublicTest improved" in table and "PrivateTest improved" in table
    assert selection_note(improve) in table  # the note reads what improve chose by
    for model in ("baseline", "improved"):  # the deployable model is the model
        export = json.loads((root / f"metrics/export/{model}.json").read_text())
        assert export["max_abs_logit_diff"] < 1e-4 and export["n_images"] > 0
        assert (root / f"models/{model}.onnx").stat().st_size == export["file_bytes"]
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first run")

    result = dvc(root, "exp", "run", "-S", "improve.lr=0.002")
    improved_only = {"improve", "compare", "cost", "explain@improved", "export@improved"} | {
        "report"
    }
    assert set(stages_run(result.stdout)) == improved_only | {
        e for e in EVALUATE if "improved" in e
    }
    cost = json.loads((root / "metrics/cost.json").read_text())
    assert cost["baseline"]["parameters"] == 199_687 and cost["improved"]["efficiency"] > 0
    assert "0.002" in dvc(root, "exp", "show", "--json").stdout
    # a readable table: one headline metrics file, at most 31 metric columns (28 figures, the
    # precision each model trained in, the machine)
    workspace = json.loads(dvc(root, "exp", "show", "--json").stdout)[0]["data"]["metrics"]
    assert list(workspace) == ["metrics/summary.json"]
    assert _leaves(workspace["metrics/summary.json"]["data"]) <= 31
    table = dvc(root, "exp", "show", "--md", "--no-pager").stdout
    assert "improved.private.accuracy" in table
    assert "per_class" not in table and "recall.angry" not in table
    readme = dvc(root, "exp", "show", "--md", *README_EXP_SHOW).stdout  # as README says
    assert "improved.private.accuracy" in readme and "improve.lr" in readme
    assert max(len(line) for line in readme.splitlines()) <= 200  # a screen, not 16,000 chars

    # New probe faces: the probes stage and explain rerun; prepare, training and evaluation
    # do not.
    result = dvc(root, "exp", "run", "-S", "prepare.probes.seed=5")
    assert set(stages_run(result.stdout)) == {"probes", "report"} | EXPLAIN
    assert stages_run(dvc(root, "repro").stdout) == []

    # A face of the user's own: explain reruns and shows it; nothing deletes it.
    Image.fromarray(make_synthetic_fer(70, seed=2).pixels[0]).save(
        root / "data/user_probes/happy_mine.png"
    )
    assert set(stages_run(dvc(root, "repro").stdout)) == EXPLAIN | REPORT
    explained = json.loads((root / "metrics/explain/improved.json").read_text())
    assert explained["sets"]["user_probes"]["images"][0]["file"] == "happy_mine.png"
    dvc(root, "exp", "run", "-S", "prepare.probes.seed=6")  # probes rewrites data/probes
    assert (root / "data/user_probes/happy_mine.png").exists()

    # dvc plots show / diff: every Vega plot renders in a real browser with no network
    for command in (("plots", "show"), ("plots", "diff", "HEAD")):
        out = tmp_path / "-".join(command)
        dvc(root, *command, "-o", str(out))
        page = (out / "index.html").read_text()
        assert "cdn.jsdelivr" not in page and "<script src" not in page
        vega_divs = re.findall(r"vegaEmbed\('#([^']+)'", page)
        assert len(vega_divs) >= 9, vega_divs
        if CHROMIUM is None:
            pytest.skip("chromium is not installed (apt-get install chromium): pages not opened")
        dom, errors = offline_dom(out / "index.html")
        assert errors == []
        drawn = drawn_divs(dom)
        assert all(drawn.get(div) for div in vega_divs), drawn


README_EXP_SHOW = (
    "--drop",
    ".*",
    "--keep",
    r"Experiment|improve\.lr$"
    r"|improved\.(private\.accuracy|private\.macro_f1|private\.disgust_recall|kept_start)$",
)
EXPLAIN = {"explain@baseline", "explain@improved"}
REPORT = {"report"}  # reads every result: reruns after any stage that changes one
EXPORT = {"export@baseline", "export@improved"}
EVALUATE = {
    f"evaluate@{m}-{s}" for m in ("baseline", "improved") for s in ("public_test", "private_test")
}


def _run_queue(root: Path) -> dict[str, str]:
    """Start DVC's queue worker and wait until no experiment is queued or running."""
    dvc(root, "queue", "start")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc(root, "queue", "status").stdout
        rows = [line.split() for line in status.splitlines()[1:] if line.strip()]
        states = {row[1]: row[-1] for row in rows if len(row) >= 5}
        if states and not {"Queued", "Running"} & set(states.values()):
            return states
        time.sleep(1)
    raise AssertionError(f"queue did not finish:\n{status}")


def _experiment_prepare_summary(root: Path, name: str) -> dict:
    """metrics/prepare.json as experiment `name` committed it (a cache: false output)."""
    revs = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") == name and node.get("rev"):
                revs.append(node["rev"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(dvc(root, "exp", "show", "--json").stdout))
    assert revs, f"experiment {name} not in dvc exp show"
    return json.loads(git(root, "show", f"{revs[0]}:metrics/prepare.json"))


def test_queued_experiments_run_on_the_real_csv_or_fail_never_on_synthetic(tmp_path):
    root = make_dvc_project(tmp_path, TINY)
    real = make_synthetic_fer(100, seed=9)  # stands in for FER2013: a CSV in data/raw
    (root / "data/raw/fer2013.csv").write_text(to_csv_text(real))
    assert git(root, "status", "--porcelain") == ""  # the data file is never offered to git

    # Not tracked yet: DVC does not copy it into the queued workspace, and prepare says so.
    dvc(root, "exp", "run", "--queue", "-n", "untracked", "-S", "prepare.synthetic.seed=3")
    assert _run_queue(root)["untracked"] == "Failed"
    log = dvc(root, "queue", "logs", "untracked", check=False)
    assert "not in this DVC experiment's workspace" in log.stdout + log.stderr
    assert "SYNTHETIC" not in log.stdout + log.stderr

    # As the README says: track it with DVC once and commit the .dvc file.
    dvc(root, "add", "data/raw/fer2013.csv")
    git(root, "add", "data/raw/fer2013.csv.dvc")
    git(root, "commit", "-q", "-m", "track FER2013 with DVC")
    dvc(root, "exp", "run", "--queue", "-n", "tracked", "-S", "prepare.synthetic.seed=4",
        "prepare")  # fmt: skip
    assert _run_queue(root)["tracked"] == "Success"
    summary = _experiment_prepare_summary(root, "tracked")
    assert summary["source"] == "real"
    assert summary["rows"] == len(real.labels)


def test_a_team_shares_models_and_experiments_through_git_and_dvc_remotes(tmp_path):
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    a = make_dvc_project(tmp_path / "a", TINY_ALL)
    dvc(a, "remote", "add", "-d", "shared", str(storage))
    dvc(a, "repro")
    git(a, "add", "-A")  # the README's policy: dvc.lock, metrics, curves and plots to git
    git(a, "commit", "-q", "-m", "results")
    dvc(a, "push")  # data, probes, models, explain grids to the DVC remote
    released = (a / "models/improved.pt").read_bytes()  # the results commit's model
    released_onnx = (a / "models/improved.onnx").read_bytes()
    git(a, "remote", "add", "origin", str(origin))
    git(a, "push", "-q", "origin", "HEAD:main")

    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(origin), str(b)], check=True)
    dvc(b, "pull")
    assert (b / "models/improved.pt").read_bytes() == (a / "models/improved.pt").read_bytes()
    assert "Data and pipelines are up to date" in dvc(b, "status").stdout
    assert stages_run(dvc(b, "repro").stdout) == []  # nothing retrains after a pull

    # An experiment made in A reaches B with its metrics and its model.
    dvc(a, "exp", "run", "-n", "faster-improve", "-S", "improve.lr=0.002")
    made = (a / "models/improved.pt").read_bytes()
    dvc(a, "exp", "push", "origin", "faster-improve")
    dvc(b, "exp", "pull", "origin", "faster-improve")
    shown = json.loads(dvc(b, "exp", "show", "--json").stdout)
    assert "faster-improve" in json.dumps(shown) and "0.002" in json.dumps(shown)
    dvc(b, "exp", "apply", "faster-improve")
    assert (b / "models/improved.pt").read_bytes() == made

    # Released as DVC artifacts (dvc.yaml `artifacts:`, GTO's git tags): a user with only the
    # repository's address downloads a version, or whatever is in prod, and runs it.
    _gto(a, "register", "improved")  # improved@v0.0.1 on the results commit
    _gto(a, "register", "improved-onnx")
    _gto(a, "assign", "improved", "--stage", "prod")
    git(a, "push", "-q", "origin", "--tags")
    # a hosted repository has a default branch; a bare one's HEAD names master until told
    subprocess.run(
        ["git", "-C", str(origin), "symbolic-ref", "HEAD", "refs/heads/main"], check=True
    )
    user = tmp_path / "user"
    user.mkdir()
    dvc(user, "artifacts", "get", str(origin), "improved", "--stage", "prod", "-o", "prod.pt")
    dvc(user, "artifacts", "get", str(origin), "improved-onnx", "--rev", "v0.0.1", "-o", "m.onnx")
    assert (user / "prod.pt").read_bytes() == released  # not the experiment's, made later
    assert (user / "m.onnx").read_bytes() == released_onnx
    face = user / "happy.png"
    Image.fromarray(make_synthetic_fer(70, seed=2).pixels[0]).save(face)
    for model in ("prod.pt", "m.onnx"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferx.deploy.predict",
                "--model",
                model,
                "--no-detect",
                "--json",
                str(face),
            ],
            cwd=user,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["predictions"][0]["predicted"] in CLASS_NAMES


def _gto(root: Path, *args: str) -> None:
    gto = Path(sys.executable).parent / "gto"  # ships with DVC
    subprocess.run([str(gto), *args], cwd=root, check=True, capture_output=True, text=True)


def _leaves(node) -> int:
    return sum(_leaves(v) for v in node.values()) if isinstance(node, dict) else 1


def test_an_architecture_experiment_runs_every_stage_on_that_network(tmp_path):
    root = make_dvc_project(tmp_path, {**TINY_ALL, "train": {"epochs": 2, "batch_size": 32}})
    # attention belongs to the mini-Xception: set with the network, whatever the default
    dvc(
        root,
        "exp",
        "run",
        "-n",
        "cnn",
        "-S",
        "train.model.arch=baseline_cnn",
        "-S",
        "train.model.attention=none",
    )
    for name in ("baseline", "improved"):
        state = load_state(root / f"models/{name}.pt")
        assert state["config"]["arch"] == "baseline_cnn"
    cost = json.loads((root / "metrics/cost.json").read_text())
    assert cost["baseline"]["arch"] == "baseline_cnn" and cost["baseline"]["parameters"] > 25e6
    assert cost["baseline"]["tta"]["n_views"] == 10
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert 0 <= summary["improved"]["private"]["tta_accuracy"] <= 1
    assert json.loads((root / "metrics/explain/baseline.json").read_text())
    shown = dvc(root, "exp", "show", "--json").stdout
    assert "baseline_cnn" in shown


def _set_params(root: Path, update: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in update.items():
        params.setdefault(section, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_each_change_reruns_exactly_the_stages_that_read_it(tmp_path):
    root = make_dvc_project(tmp_path, {**TINY_ALL, "evaluate": {"tta": "none"}})
    raw = root / "data/raw/faces.csv"  # a real-format file: prepare reads it as FER2013
    raw.write_text(to_csv_text(make_synthetic_fer(120, seed=4)))
    first = set(stages_run(dvc(root, "repro").stdout))
    assert first == {"prepare", "probes", "train", "improve_init", "improve", "compare", "cost"} | (
        {"plots_page"} | EXPLAIN | EVALUATE | EXPORT | REPORT
    )
    assert json.loads((root / "data/prepared/source.json").read_text()) == {"source": "real"}

    # The data file renamed, then gzipped: prepare reruns (and records the new name); the
    # splits and their source are byte-identical, so nothing after it does.
    raw.rename(root / "data/raw/renamed.csv")
    assert stages_run(dvc(root, "repro").stdout) == ["prepare", "report"]
    assert json.loads((root / "metrics/prepare.json").read_text())["input"].endswith("renamed.csv")
    subprocess.run(["gzip", str(root / "data/raw/renamed.csv")], check=True)
    assert stages_run(dvc(root, "repro").stdout) == ["prepare", "report"]

    # Other probe classes: new probe faces, so probes and explain; not prepare, no training.
    _set_params(root, {"prepare": {"probes": {"test": ["happy", "sad", "fear", "angry"]}}})
    assert set(stages_run(dvc(root, "repro").stdout)) == {"probes"} | EXPLAIN | REPORT

    # Improve from scratch: improve and what reads the improved model.
    improved_side = (
        {"improve", "compare", "cost", "explain@improved", "export@improved"}
        | {e for e in EVALUATE if "improved" in e}
        | REPORT
    )
    _set_params(root, {"improve": {"init": "scratch"}})
    assert set(stages_run(dvc(root, "repro").stdout)) == {"improve_init"} | improved_side
    # ... then a new baseline (train.epochs is not improve's): improve is not rerun
    _set_params(root, {"train": {"epochs": 2}})
    baseline_side = (
        {"train", "improve_init", "compare", "cost"}
        | {s for s in EXPLAIN | EXPORT | EVALUATE if "baseline" in s}
        | REPORT
    )
    assert set(stages_run(dvc(root, "repro").stdout)) == baseline_side

    # The user's own probe folder, anywhere: explain depends on it, and on what it holds.
    mine = root / "my_faces"
    mine.mkdir()
    Image.fromarray(make_synthetic_fer(70, seed=2).pixels[0]).save(mine / "happy.png")
    _set_params(root, {"explain": {"user_probes": "my_faces"}})
    assert set(stages_run(dvc(root, "repro").stdout)) == EXPLAIN | REPORT
    Image.fromarray(make_synthetic_fer(70, seed=2).pixels[1]).save(mine / "sad.png")
    assert set(stages_run(dvc(root, "repro").stdout)) == EXPLAIN | REPORT
    explained = json.loads((root / "metrics/explain/baseline.json").read_text())
    assert [i["file"] for i in explained["sets"]["user_probes"]["images"]] == [
        "happy.png",
        "sad.png",
    ]

    # How, not what: runtime reruns nothing.
    _set_params(root, {"runtime": {"memory_format": "contiguous", "eval_batch_size": 7}})
    assert stages_run(dvc(root, "repro").stdout) == []


def test_a_training_already_run_is_restored_from_the_run_cache_not_run_again(tmp_path):
    # a study of improve runs one experiment per row, each with the same train stage: DVC
    # must restore it (its run cache is off for a stage with any `cache: false` output)
    root = make_dvc_project(tmp_path, {**TINY, "train": {"epochs": 1, "batch_size": 32}})
    assert "train" in stages_run(dvc(root, "repro", "train").stdout)
    first = (root / "models/baseline.pt").read_bytes()
    _set_params(root, {"train": {"lr": 0.002}})
    assert "train" in stages_run(dvc(root, "repro", "train").stdout)
    _set_params(root, {"train": {"lr": 0.001}})  # back to the first run's params
    out = dvc(root, "repro", "train").stdout
    assert "train" not in stages_run(out) and "Stage 'train' is cached" in out
    assert (root / "models/baseline.pt").read_bytes() == first
    assert json.loads((root / "metrics/train.json").read_text())["epochs_run"] == 1
