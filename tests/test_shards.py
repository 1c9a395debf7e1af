"""An ablation split over machines: shards run apart, push through DVC's remotes, one collects."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferx.experiments import queue, shards
from ferx.experiments.spec import SpecError, load_spec, make_runs, read_params_file
from tests.conftest import PROJECT_ROOT, dvc, git
from tests.test_ablate import SHOW_STAGE, TOY_PIPELINE, TOY_SPEC, TOY_STAGE

# the toy stage, plus a cached output: what a model file is to the real pipeline
STAGE = TOY_STAGE + (
    'os.makedirs("models", exist_ok=True)\n'
    'open("models/toy.bin", "w").write(f"{t[\'seed\']} {right}\\n")\n'
)
PIPELINE = json.loads(json.dumps(TOY_PIPELINE))
PIPELINE["stages"]["toy"]["outs"].append("models/toy.bin")


def _runs(root: Path, seeds: tuple[int, ...] = ()):
    spec = load_spec(root / "spec.yaml", root / "params.yaml")
    return make_runs(spec, read_params_file(root / "params.yaml"), seeds)


def test_push_names_each_experiment_by_its_full_ref(monkeypatch):
    """Two commits can each hold an experiment of one name (a spec rerun after a commit):
    `dvc exp push origin NAME` would then push HEAD's or refuse; the ref names one."""
    calls, said = [], {"stderr": ""}

    def fake_dvc(*args, **kw):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "", said["stderr"])

    monkeypatch.setattr(shards.queue, "dvc", fake_dvc)
    a, b = "a" * 40, "b1" + "c" * 38
    found = [
        queue.Experiment("recipe-0-s0", "1" * 40, a, "", {}, None),
        queue.Experiment("recipe-0-s0", "2" * 40, b, "", {}, None),
        queue.Experiment("recipe-0-s0", "2" * 40, b, "", {}, None),  # one run, two rows
    ]
    assert shards.push("origin", found) == 2
    assert calls == [
        (
            "exp",
            "push",
            "origin",
            f"refs/exps/aa/{a[2:]}/recipe-0-s0",
            f"refs/exps/b1/{b[2:]}/recipe-0-s0",
        )
    ]
    calls.clear()
    assert shards.push("origin", []) == 0
    assert calls == []  # nothing finished: no push at all
    # DVC exits 0 and only warns when the remote has another commit under the ref
    said["stderr"] = "Local experiment 'recipe-0-s0' has diverged from remote experiment"
    with pytest.raises(shards.PushError, match="already holds another run"):
        shards.push("origin", found[:1])


def test_shards_split_the_runs_stably_and_evenly(tmp_path):
    (tmp_path / "spec.yaml").write_text(TOY_SPEC)
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    runs = _runs(tmp_path)  # 3 rows x 2 seeds
    for count in (1, 2, 4, 6, 7):
        parts = [shards.shard_runs(runs, shards.Shard(k, count)) for k in range(1, count + 1)]
        names = [r.name for part in parts for r in part]
        assert sorted(names) == sorted(r.name for r in runs)  # each run in one shard
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1
    # the same on any machine: from the runs' params, not their order or the process
    assert shards.assignment(list(reversed(runs)), 3) == shards.assignment(runs, 3)
    # the fingerprint every machine prints: the same for the same runs in any order, another
    # for another set (another --seeds deals the runs out differently)
    assert shards.fingerprint(list(reversed(runs))) == shards.fingerprint(runs)
    assert shards.fingerprint(runs[:-1]) != shards.fingerprint(runs)
    assert shards.fingerprint(_runs(tmp_path, (5, 6))) != shards.fingerprint(runs)
    code = (
        "import sys; from pathlib import Path; from tests.test_shards import _runs;"
        "from ferx.experiments.shards import assignment;"
        f"print(sorted(assignment(_runs(Path({str(tmp_path)!r})), 3).items()))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert other.stdout.strip() == str(sorted(shards.assignment(runs, 3).items()))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_one_error(text):
    with pytest.raises(SpecError, match="--shard"):
        shards.parse_shard(text)


def _machine(origin: Path, root: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(root)], check=True)
    git(root, "config", "user.email", "ci@example.com")
    git(root, "config", "user.name", "ci")
    return root


def _ablate(root: Path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",  # one thread each: two machines share these cores
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ferx.experiments.cli", "spec.yaml", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=900)
    return process.returncode, out, err


@pytest.mark.slow
def test_three_machines_make_the_single_machine_table(tmp_path):
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    seed = tmp_path / "seed"
    (seed / "data/raw").mkdir(parents=True)
    (seed / "data/raw/README").write_text("the FER2013 file goes here\n")
    shutil.copy(PROJECT_ROOT / "params.yaml", seed / "params.yaml")
    (seed / "toy.py").write_text(STAGE)
    (seed / "show.py").write_text(SHOW_STAGE)  # the toy's stage that only shows results
    (seed / "data/user_probes").mkdir()
    (seed / "data/user_probes/README.md").write_text("your faces\n")
    (seed / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (seed / "spec.yaml").write_text(TOY_SPEC)
    git(seed, "init", "-q", "-b", "main")
    git(seed, "config", "user.email", "ci@example.com")
    git(seed, "config", "user.name", "ci")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=seed, check=True)
    dvc(seed, "config", "core.analytics", "false")
    dvc(seed, "remote", "add", "-d", "storage", str(storage))
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "toy pipeline with a DVC remote")
    git(seed, "push", "-q", str(origin), "main")
    subprocess.run(
        ["git", "-C", str(origin), "symbolic-ref", "HEAD", "refs/heads/main"], check=True
    )
    one, two, three = (_machine(origin, tmp_path / name) for name in ("one", "two", "three"))

    # No remote, an unknown one, or no DVC remote, or a shard asked to collect: one line
    # each, nothing queued.
    code, _, err = _done(_ablate(one, "--shard", "1/2", "--remote", "origin", "--collect-only"))
    assert code == 2 and "--shard 1/2 with --collect-only" in err
    code, _, err = _done(_ablate(one, "--shard", "1/2"))
    assert code == 2 and "--shard 1/2: needs --remote NAME" in err
    code, _, err = _done(_ablate(one, "--shard", "1/2", "--remote", "nowhere"))
    assert code == 2 and "--remote nowhere: no such git remote" in err
    dvc(one, "remote", "default", "--unset")
    code, _, err = _done(_ablate(one, "--shard", "1/2", "--remote", "origin"))
    assert code == 2 and "no default DVC remote" in err
    dvc(one, "remote", "default", "storage")
    assert "Queued" not in dvc(one, "queue", "status").stdout

    # Shards 1/2 and 2/2 at the same time on two machines; the third collects.
    first, second = (
        _ablate(one, "--shard", "1/2", "--remote", "origin"),
        _ablate(two, "--shard", "2/2", "--remote", "origin"),
    )
    prints = []
    for process, shard in ((first, "1/2"), (second, "2/2")):
        code, out, err = _done(process)
        assert code == 0, out + err
        assert f"shard {shard}: 3 of 6 runs" in out and "0 already done, 3 queued" in out
        assert "pushed 3 experiment(s)" in out  # its own share, no more
        prints.append(re.search(r"ablate: runs ([0-9a-f]{12})", out).group(1))
    assert prints[0] == prints[1] == shards.fingerprint(_runs(one))  # the machines agree
    assert any(storage.rglob("*")), "the outputs reached the DVC remote"
    code, out, err = _done(_ablate(three, "--collect-only", "--remote", "origin"))
    assert code == 0, out + err
    collected = json.loads((three / "ablation/toy/table.json").read_text())

    # The same spec, seeds and commit on one machine: the same table, value for value.
    single = _machine(origin, tmp_path / "single")
    code, out, err = _done(_ablate(single))
    assert code == 0, out + err
    assert json.loads((single / "ablation/toy/table.json").read_text()) == collected
    assert (single / "ablation/toy/table.md").read_text() == (
        three / "ablation/toy/table.md"
    ).read_text()
    # the collector has the experiments' outputs too, from the DVC remote
    dvc(three, "exp", "apply", collected[1]["runs"][0]["experiment"])
    assert (three / "models/toy.bin").read_text().split()[0] == "0"
    git(three, "checkout", "-q", "--", ".")  # back to the commit's params

    # A machine that never ran its shard: its runs are missing, named; rerunning that shard
    # on any machine runs only those, and the table is whole.
    code, out, err = _done(_ablate(one, "--seeds", "7", "--shard", "1/2", "--remote", "origin"))
    assert code == 0, out + err
    done = len([n for n, k in shards.assignment(_runs(one, (7,)), 2).items() if k == 1])
    # the same shard again on another machine: what `one` finished is on the remote, so
    # nothing runs twice
    code, out, err = _done(_ablate(two, "--seeds", "7", "--shard", "1/2", "--remote", "origin"))
    assert code == 0 and f"{done} already done, 0 queued" in out, out + err
    code, out, err = _done(_ablate(three, "--seeds", "7", "--collect-only", "--remote", "origin"))
    owner = shards.assignment(_runs(three, (7,)), 2)
    missing = sorted(name for name, shard in owner.items() if shard == 2)
    assert code == 1 and f"{len(missing)} of 3 runs have no results" in err, out + err
    assert all(name in err for name in missing) and "--shard K/N --remote origin" in err
    code, out, err = _done(_ablate(two, "--seeds", "7", "--shard", "2/2", "--remote", "origin"))
    assert code == 0 and f"0 already done, {len(missing)} queued" in out, out + err
    code, out, err = _done(_ablate(three, "--seeds", "7", "--collect-only", "--remote", "origin"))
    assert code == 0, out + err
