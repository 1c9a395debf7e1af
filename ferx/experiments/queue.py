"""DVC's side: queue runs as experiments, start workers, wait, read every experiment back.

Results live in DVC: `dvc exp show --json` for every baseline commit that has experiments, and
the experiments' own commits for the per-face evaluations. (ferx.experiments.records copies
what a table needs of each finished run into git, for clones that lack the experiments.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferx import paths
from ferx.errors import UserError
from ferx.experiments.spec import Run

EXPS_NAMESPACE = "refs/exps/"  # DVC keeps experiment refs/exps/<baseline[:2]>/<rest>/<name>
ACTIVE = ("Queued", "Running")
FINISHED = ("Success", "Failed")


@dataclass(frozen=True)
class Experiment:
    name: str
    rev: str  # the experiment's commit
    baseline: str  # the commit it was run on top of
    timestamp: str
    params: dict[str, Any]  # params.yaml as it ran
    metrics: dict[str, Any] | None  # metrics/summary.json, None if it has none


@dataclass(frozen=True)
class Task:
    task: str  # the queue entry's id: one name can have several entries
    name: str
    status: str


def dvc_env() -> dict[str, str]:
    # stage commands say `python`: this interpreter's folder goes first on PATH
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=dvc_env()
    )
    if check and result.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
    return result


def set_value(value: Any) -> str:
    """A value as `dvc exp run -S key=value` parses it (YAML)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def baselines() -> list[str]:
    """Every commit that has experiments (not only HEAD: a commit after a run keeps it)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", EXPS_NAMESPACE],
        capture_output=True,
        text=True,
    ).stdout.split()
    found = []
    for ref in refs:
        parts = ref.removeprefix(EXPS_NAMESPACE).split("/")
        if len(parts) == 3 and len(parts[0]) == 2:  # not exec/, celery/, temp/, stash
            sha = parts[0] + parts[1]
            if sha not in found:
                found.append(sha)
    return found


def parse_show(shown: list[dict[str, Any]]) -> list[Experiment]:
    """The experiments in `dvc exp show --json` output, each with the baseline it ran on."""
    found = []
    for commit in shown:
        for group in commit.get("experiments") or []:
            for entry in group.get("revs") or []:
                data = entry.get("data")
                if not entry.get("name") or not isinstance(data, dict):
                    continue
                params = (data.get("params") or {}).get("params.yaml", {}).get("data") or {}
                metrics = (data.get("metrics") or {}).get(paths.SUMMARY.as_posix(), {}).get("data")
                found.append(
                    Experiment(
                        entry["name"],
                        entry["rev"],
                        commit["rev"],
                        str(data.get("timestamp") or ""),
                        params,
                        metrics if isinstance(metrics, dict) else None,
                    )
                )
    return found


def experiments() -> list[Experiment]:
    """Every finished experiment in the repository, on any baseline commit."""
    revs = baselines()
    if not revs:
        return []
    args = ["exp", "show", "--json", "--hide-workspace", "--hide-queued", "--hide-failed"]
    args += [arg for rev in revs for arg in ("--rev", rev)]
    return parse_show(json.loads(dvc(*args).stdout or "[]"))


def read_at(rev: str, path: str) -> str | None:
    """A file as an experiment's commit holds it, or None."""
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def parse_status(text: str) -> list[Task]:
    """`dvc queue status` (Task, Name, Created, Status; Created may hold a space), one entry
    per task: a name re-queued after it ran is listed twice, with two task ids."""
    lines = text.splitlines()[1:]  # after the header
    table = lines[: lines.index("")] if "" in lines else lines  # then "Worker status: ..."
    rows = [line.split() for line in table]
    return [Task(row[0], row[1], row[-1]) for row in rows if len(row) >= 4]


def queue_tasks(
    attempts: int = 5,
    pause: float = 1.0,
    status: Callable[[], subprocess.CompletedProcess] = lambda: dvc("queue", "status"),
) -> list[Task]:
    """The queue's tasks. `dvc queue status` can fail for a moment while a worker writes its
    task's JSON ("unexpected error - Expecting value: line 1 column 1", seen in CI): a failure
    is retried `attempts` times, `pause` seconds apart, before it is the user's error."""
    for attempt in range(1, attempts + 1):
        try:
            return parse_status(status().stdout)
        except UserError:
            if attempt == attempts:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def queue_runs(
    runs: list[Run],
    threads: int | None,
    queued: list[str] | None = None,
    say: Callable[[str], None] = print,
    targets: Sequence[str] = (),
) -> list[str]:
    """Queue each run as a DVC experiment under its name (a name this commit already uses for
    other results gets a suffix: no finished experiment is removed or overwritten); the names
    they were queued under, in order, also appended to `queued` as they go (for Ctrl-C).
    `targets`: the stages each run reproduces with what is upstream of them (none: all)."""
    queued = [] if queued is None else queued
    baseline = head()
    taken = {e.name for e in experiments() if e.baseline == baseline}
    taken |= {t.name for t in queue_tasks() if t.status in ACTIVE}
    for run in runs:
        name, n = run.name, 1
        while name in taken:
            n += 1
            name = f"{run.name}-{n}"
        if name != run.name:
            say(f"ablate: {run.name} is taken on this commit by other results; queued as {name}")
        sets = dict(run.sets)
        if threads is not None:
            sets["runtime.threads"] = threads
        args = [arg for k, v in sets.items() for arg in ("-S", f"{k}={set_value(v)}")]
        dvc("exp", "run", "--queue", "-n", name, *args, *targets)
        taken.add(name)
        queued.append(name)
    return queued


def start_workers(jobs: int, threads: int | None = None) -> None:
    """`dvc queue start -j jobs`. With `threads`, the workers (and every stage they run, not
    only those that read runtime.threads) get OMP_NUM_THREADS / MKL_NUM_THREADS = threads."""
    env = dvc_env()
    if threads is not None:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # Not captured: the workers `queue start` launches inherit its output, and a captured
    # pipe would stay open (and this call blocked) until the last experiment ends.
    started = subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    if started.returncode != 0:
        raise UserError(f"dvc queue start -j {jobs} failed (exit {started.returncode})")


def wait_for(
    names: list[str],
    before: set[str],
    poll: float = 2.0,
    max_poll: float = 30.0,
    lost_after: float = 120.0,
    tasks: Callable[[], list[Task]] = queue_tasks,
    jobs: int = 1,
    restart: Callable[[], None] | None = None,
    restart_after: float = 60.0,
) -> dict[str, Task]:
    """Wait until none of `names` is queued or running, with a progress line; each name's
    final task (status Success, Failed, or Lost with no task id).

    Tasks are told apart by their id, so an old Success listed beside a re-queued Running
    entry of the same name does not end the wait. A name can be missing from
    `dvc queue status` for a moment while a worker takes it, so a missing name is waited for;
    one missing for `lost_after` seconds while nothing of ours is active is reported Lost.
    `before`: the task ids listed before these runs were queued (not theirs).

    A DVC queue worker can end while tasks are still queued (seen on FER2013 with -j 2: one of
    two workers stopped and the rest ran one at a time): when fewer than `jobs` of ours run
    while some wait, for `restart_after` seconds, `restart` is called (`dvc queue start`
    only adds the missing workers).

    Each poll runs `dvc queue status`, about 0.85 s of CPU (AMD Zen 3, 2026-12-06): every 2 s
    it took about a sixth of a core from the runs it watched. So the pause grows by half while
    nothing changes, from `poll` up to `max_poll`, and is `poll` again after any change."""
    start = time.monotonic()
    idle_since = short_since = None
    pause, last_seen = poll, None
    while True:
        ours = [t for t in tasks() if t.name in names and t.task not in before]
        seen = sorted((t.task, t.status) for t in ours)
        pause = poll if seen != last_seen else min(max_poll, pause * 1.5)
        last_seen = seen
        active = {t.name for t in ours if t.status in ACTIVE}
        states = {t.name: t for t in ours if t.status in FINISHED and t.name not in active}
        finished = len(states)
        now = time.monotonic()
        elapsed = now - start
        left = elapsed / finished * (len(names) - finished) if finished else None
        eta = f", about {left / 60:.0f} min left" if left is not None else ""
        print(
            f"\rablate: {finished}/{len(names)} experiments done, {elapsed / 60:.1f} min{eta}  ",
            end="",
            flush=True,
        )
        if finished == len(names):
            print()
            return states
        running = sum(t.status == "Running" for t in ours)
        waiting = sum(t.status == "Queued" for t in ours)
        if restart is None or not waiting or running >= jobs:
            short_since = None
        elif short_since is None:
            short_since = now
        elif now - short_since >= restart_after:
            restart()
            short_since = None
        if active:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= lost_after:
            print()
            return {**{n: Task("", n, "Lost") for n in names}, **states}
        time.sleep(pause)


def failure_reason(task: str) -> str:
    """The last error line of a failed queue task's log (by task id: a name may have several)."""
    log = dvc("queue", "logs", task, check=False)
    lines = [line.strip() for line in (log.stdout + log.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["failed (no log)"])[-1][:300]
