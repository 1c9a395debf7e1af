"""An ablation split over machines with no coordinator: each takes its shard of the runs and
pushes what it finishes through DVC's own remotes; any clone pulls them all and collects.

The assignment depends only on the runs' identities (their complete resolved params), so N
machines on the same spec and commit agree on it without talking: the distinct params are
ordered by their sha256 and dealt round-robin, shard k of N taking every N-th from the k-th
(balanced to within one run). Runs that resolve alike are one experiment and one assignment.
Transport and storage are DVC's: `dvc exp push GIT_REMOTE` sends an experiment's git ref to
the git remote and its cached outputs to the repository's default DVC remote; workers also get
DVC's auto-push (`DVC_EXP_AUTO_PUSH`, `DVC_EXP_GIT_REMOTE`, DVC >= 3.48), so an experiment
is pushed as it finishes and a machine that dies loses only what it was running. Every shard
first fetches the refs already on the remote, so a shard rerun on another machine runs only
what no machine has finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass

from ferx.experiments import queue
from ferx.experiments.spec import Run, SpecError

_SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as Slurm's array ids and the README count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = _SHARD.match(text.strip())
    if not match:
        raise SpecError(f"--shard {text}: expected K/N, e.g. 1/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise SpecError(f"--shard {text}: K must be between 1 and N (N >= 1)")
    return Shard(index, count)


def _identity(run: Run) -> str:
    return json.dumps(run.resolved, sort_keys=True)


def assignment(runs: list[Run], count: int) -> dict[str, int]:
    """run name -> the shard (1..count) that runs it."""
    keys = sorted({_identity(r) for r in runs}, key=lambda k: hashlib.sha256(k.encode()).digest())
    shard_of_key = {key: i % count + 1 for i, key in enumerate(keys)}
    return {run.name: shard_of_key[_identity(run)] for run in runs}


def shard_runs(runs: list[Run], shard: Shard) -> list[Run]:
    owner = assignment(runs, shard.count)
    return [run for run in runs if owner[run.name] == shard.index]


def check_remote(name: str) -> None:
    """The git remote `name` and a default DVC remote exist; else one error, before any work."""
    git = subprocess.run(["git", "remote", "get-url", name], capture_output=True, text=True)
    if git.returncode != 0:
        raise SpecError(
            f"--remote {name}: no such git remote in this repository "
            f"(`git remote add {name} URL`; experiments travel as git refs)"
        )
    default = queue.dvc("remote", "default", check=False)
    if default.returncode != 0 or not default.stdout.strip():
        raise SpecError(
            "--remote: this repository has no default DVC remote for the experiments' "
            "outputs (`dvc remote add -d storage PATH_OR_URL`, then commit .dvc/config)"
        )


def auto_push_env(remote: str) -> None:
    """Let the queue's workers push each experiment when it finishes (DVC's exp.auto_push)."""
    os.environ["DVC_EXP_AUTO_PUSH"] = "true"
    os.environ["DVC_EXP_GIT_REMOTE"] = remote


def exp_ref(experiment: queue.Experiment) -> str:
    """The experiment's full git ref. A name alone is ambiguous once the same name exists on
    two baseline commits (DVC then picks the one on HEAD, or refuses): the ref is not."""
    base = experiment.baseline
    return f"refs/exps/{base[:2]}/{base[2:]}/{experiment.name}"


def fingerprint(runs: list[Run]) -> str:
    """A short digest of the whole set of runs. The assignment deals that set out, so machines
    agree only if they have the same spec, --seeds and params: each prints this to compare."""
    keys = sorted({_identity(r) for r in runs})
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]


class PushError(SpecError):
    """The remote holds another experiment under the same ref (the same run done twice)."""


def push(remote: str, experiments: list[queue.Experiment]) -> int:
    """Push finished experiments (git refs to `remote`, outputs to the default DVC remote);
    returns how many distinct experiments went. DVC only warns, and exits 0, when the
    remote's ref of that name is another commit (the same run finished on two machines): that
    is an error here, so nothing says "pushed"."""
    refs = sorted({exp_ref(e) for e in experiments})
    if not refs:
        return 0
    result = queue.dvc("exp", "push", remote, *refs)
    if "diverged" in result.stderr + result.stdout:
        raise PushError(
            f"dvc exp push {remote}: {remote} already holds another run of the same experiment "
            "(finished on another machine too); nothing was overwritten. `dvc exp pull "
            f"{remote}` then `dvc exp show` to compare, or `dvc exp push --force` to replace it"
        )
    return len(refs)


def fetch_refs(remote: str) -> None:
    """The experiments' git refs from `remote`, no outputs: what another machine finished,
    so that a shard rerun anywhere skips it. A local ref that differs is kept (DVC warns)."""
    queue.dvc("exp", "pull", "--all-commits", "--no-cache", remote)


def pull_outputs(remote: str, experiments: list[queue.Experiment]) -> None:
    """The cached outputs (models, plots) of these experiments from the default DVC remote."""
    refs = sorted({exp_ref(e) for e in experiments})
    if refs:
        queue.dvc("exp", "pull", remote, *refs)
