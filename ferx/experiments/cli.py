"""`ferx-ablate`: an ablation table and accuracy-vs-GFLOPs frontiers from DVC experiments.

    ferx-ablate ablations/recipe.yaml [--seeds 0 1 2] [--jobs N] [--collect-only]
    ferx-ablate ablations/recipe.yaml --shard K/N --remote origin   # this machine's share
    ferx-ablate ablations/recipe.yaml --collect-only --remote origin  # every machine's results

Every row of the spec (ferx.experiments.spec) at every seed is one DVC experiment, queued with
`dvc exp run --queue` and run by `dvc queue start`. An experiment stands for a run only if it
ran on the same params and files as far as its table figures depend on them (its run key:
ferx.experiments.identity), on any commit: a rerun queues only the runs no experiment stands
for, and committing the table, or changing what only explains or presents results (the probes,
the report), keeps every result. Every finished run is also recorded in
ablation/<name>/runs.json (ferx.experiments.records), which stands for it in any clone with
the same stage inputs: commit it, and a study can go on in another sitting or clone. Outputs,
written only once every run has results (until then the previous table stays):
ablation/<name>/table.md, table.json, frontier.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferx import paths
from ferx.atomic import write_atomic, write_json
from ferx.errors import UserError
from ferx.experiments import identity, queue, records, shards
from ferx.experiments.spec import (
    Run,
    Spec,
    SpecError,
    check_seeds,
    load_spec,
    make_runs,
    normalised,
    read_params_file,
)
from ferx.experiments.stats import correct_from_text, predicted_from_text
from ferx.experiments.table import (
    MODEL,
    Result,
    markdown,
    precision_note,
    table_records,
)
from ferx.params import DEFAULT_PARAMS_PATH, ParamsError

PUBLIC_EVAL = identity.PUBLIC_EVAL  # holds which faces were right
assert paths.evaluation(MODEL, "public_test").as_posix() == PUBLIC_EVAL  # the model it reads


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int, available: int) -> int | None:
    """runtime.threads for each of `jobs` experiments run at once: the cores shared out (each
    torch process would otherwise take every core). None at one job: params.yaml decides."""
    return None if jobs == 1 else max(1, available // jobs)


_canonical = records.canonical


def _fingerprints() -> Callable[[dict[str, Any]], str]:
    """params -> the run key of those params on today's workspace (identity.fingerprint: the
    params and files the table's figures depend on). The workspace is read once, on first
    use; each params' key computed once. Two runs with the same key are one experiment."""
    workspace: list[Any] = []
    done: dict[str, str] = {}  # per params: dvc.yaml's ${...} may name files after them

    def of(params: dict[str, Any]) -> str:
        if not workspace:
            path = Path(identity.PIPELINE)
            text = path.read_text() if path.exists() else None
            workspace.extend([identity.workspace_blobs(), identity.parse_pipeline(text)])
        key = _canonical(params)
        if key not in done:
            done[key] = identity.workspace_fingerprint(workspace[0], workspace[1], params)
        return done[key]

    return of


def _table_targets(params_path: Path) -> list[str]:
    """What each run reproduces: the stages that write what the table reads, with what is
    upstream of them (the presenting stages, explain and report, would only cost minutes)."""
    path = Path(identity.PIPELINE)
    pipeline = identity.parse_pipeline(path.read_text() if path.exists() else None)
    return identity.table_targets(pipeline, read_params_file(params_path))


EVAL_SPLITS = ("public_test", "private_test")


def _evaluation(rev: str, model: str, split: str) -> dict[str, Any]:
    text = queue.read_at(rev, paths.evaluation(model, split).as_posix())
    found = json.loads(text) if text else {}
    return found if isinstance(found, dict) else {}


def _from_experiment(run: Run, experiment: queue.Experiment, fingerprint: str) -> records.Record:
    """The record of a finished experiment: its summary (in `experiment`), and from its
    evaluations each model's per-face PublicTest strings and per-class recall."""
    faces: dict[str, dict[str, str]] = {}
    recall: dict[str, dict[str, dict[str, float]]] = {}
    for model in records.MODELS:
        for split in EVAL_SPLITS:
            found = _evaluation(experiment.rev, model, split)
            per_class = found.get("per_class") or {}
            if per_class:
                recall.setdefault(model, {})[split] = {
                    name: float(v["recall"]) for name, v in per_class.items()
                }
            if split == "public_test":
                strings = {
                    k: found[k] for k in records.FACE_FIELDS if isinstance(found.get(k), str)
                }
                if strings:
                    faces[model] = strings
    correct = faces.get("baseline", {}).get("correct")
    return records.Record(
        run.resolved, fingerprint, experiment, correct, faces or None, recall or None
    )


RunKey = Callable[[dict[str, Any]], str]  # params -> their run key on today's workspace


def match(
    runs: list[Run], found: list[queue.Experiment], key: RunKey | None = None
) -> dict[str, records.Record]:
    """run name -> the newest finished experiment that stands for it: the same run key (the
    params and files the table's figures depend on), on any baseline commit. Runs with the
    same key (a factor that restates a default, or sets only what explains) share it."""
    ours = key or _fingerprints()
    wanted: dict[str, list[Run]] = {}
    for run in runs:
        wanted.setdefault(ours(run.resolved), []).append(run)
    matched: dict[str, tuple[Run, queue.Experiment, str]] = {}
    for experiment in sorted(found, key=lambda e: e.timestamp):  # the newest wins
        if experiment.metrics is None or not experiment.params:
            continue
        try:
            params = normalised(experiment.params)
            today = ours(params)  # what it would be today: a cheap first sieve
            if today not in wanted or identity.commit_fingerprint(experiment.rev, params) != today:
                continue
        except ParamsError:  # params of another schema: stands for nothing of today's
            continue
        except UserError:  # an old commit's dvc.yaml this reader refuses: stands for nothing
            continue
        matched |= {run.name: (run, experiment, today) for run in wanted[today]}
    return {name: _from_experiment(*hit) for name, hit in matched.items()}


def with_records(
    runs: list[Run],
    kept: list[records.Record],
    matched: dict[str, records.Record],
    key: RunKey | None = None,
) -> dict[str, records.Record]:
    """run name -> what stands for it: the experiment `match` found or a kept record of the
    same run key, the newer if both (as between experiments)."""
    if not kept:
        return dict(matched)
    ours = key or _fingerprints()
    done = {}
    for run in runs:
        both = matched.get(run.name), records.find(kept, ours(run.resolved))
        if found := [r for r in both if r is not None]:
            done[run.name] = max(found, key=records.newness)
    return done


def results(runs: list[Run], done: dict[str, records.Record], model: str = MODEL) -> list[Result]:
    out = []
    for run in runs:
        record = done.get(run.name)
        if record is None:
            continue
        correct = (record.faces or {}).get(model, {}).get("correct")
        if model == MODEL:
            correct = correct or record.public_correct  # an older record: the baseline's only
        public = correct_from_text(correct) if correct else None
        out.append(Result(run, record.experiment, public, model, record.recall, record.faces))
    return out


def public_labels(finished: list[Result], params_path: Path = DEFAULT_PARAMS_PATH):
    """PublicTest's labels from this workspace's prepared split, for the intervals of a study
    of improve (runs.json keeps predictions, never the data); None when the split is not
    here or is not the one the runs classified (a face a run got right must carry the label
    it predicted)."""
    import zipfile

    import numpy as np

    try:
        out_dir = read_params_file(params_path)["prepare"]["out_dir"]
        with np.load(Path(out_dir) / "public_test.npz", allow_pickle=False) as data:
            labels = data["y"].astype(np.int64)
    except (OSError, KeyError, TypeError, ValueError, ParamsError, zipfile.BadZipFile):
        return None
    for result in finished:
        for model in records.MODELS:
            correct, predicted = (result.face_record(f, model) for f in ("correct", "predicted"))
            if correct is None or predicted is None:
                continue
            if not len(predicted) == len(correct) == len(labels):
                return None
            right = correct_from_text(correct).astype(bool)
            if not np.array_equal(predicted_from_text(predicted) == labels, right):
                return None
    return labels


def write_outputs(spec: Spec, rows: list[dict[str, Any]], out_dir: Path) -> str:
    from ferx.experiments.frontier import plot_frontiers

    text = markdown(spec, rows)
    plot_frontiers(spec, rows, out_dir / paths.ABLATION_FRONTIER)
    write_json(out_dir / paths.ABLATION_ROWS, rows)
    write_atomic(out_dir / paths.ABLATION_TABLE, lambda tmp: tmp.write_text(text))
    return text


def _interrupted(before: set[str], spec: Spec, started: bool) -> int:
    try:
        ours = [t for t in queue.queue_tasks() if t.task not in before and t.status in queue.ACTIVE]
        if not started:  # no worker was started: take back what was queued, nothing ran
            if ours:
                queue.dvc("queue", "remove", *[t.task for t in ours], check=False)
            print(f"\nablate: interrupted while queueing; removed the {len(ours)} run(s) "
                  "queued so far, nothing ran", file=sys.stderr)  # fmt: skip
            return 130
    except UserError as exc:
        print(f"\nablate: interrupted; the queue could not be read ({exc})", file=sys.stderr)
        return 130
    names = ", ".join(t.name for t in ours) or "none"
    print(
        f"\nablate: interrupted; {len(ours)} experiment(s) still queued or running in DVC's "
        f"queue ({names}): they go on without this command; "
        "`dvc queue stop --kill` stops them, "
        f"`ferx-ablate {spec.path} --collect-only` reads what finished",
        file=sys.stderr,
    )
    return 130


def _unique(runs: list[Run], key: RunKey) -> list[Run]:
    """One run per run key: two rows that resolve alike are one experiment."""
    seen: dict[str, Run] = {}
    for run in runs:
        seen.setdefault(key(run.resolved), run)
    return list(seen.values())


@dataclass
class _Plan:
    """What one invocation is about: the spec's runs, this machine's share, the records."""

    spec: Spec
    runs: list[Run]  # every row at every seed
    mine: list[Run]  # the runs this invocation may queue (its shard's, or all)
    kept_path: Path  # ablation/<name>/runs.json
    kept: list[records.Record]
    out_root: Path
    shard: shards.Shard | None
    remote: str | None
    params_path: Path = DEFAULT_PARAMS_PATH


def _plan(
    spec: Spec,
    collect_only: bool,
    seeds: tuple[int, ...],
    out_root: Path,
    params_path: Path,
    shard: shards.Shard | None,
    remote: str | None,
) -> _Plan:
    """Check the invocation and read what is already known; every refusal comes before
    anything is queued or pulled."""
    try:
        runs = make_runs(spec, read_params_file(params_path), seeds)
    except ParamsError as exc:
        raise SpecError(f"{spec.path}: {exc}") from None
    if shard is not None and collect_only:
        raise SpecError(
            f"--shard {shard} with --collect-only: collecting takes every shard's runs; "
            "drop --shard (`--collect-only --remote NAME` pulls them all first)"
        )
    kept_path = out_root / spec.name / records.FILE
    kept = records.load(kept_path)  # a damaged file stops us before anything is queued
    if shard is not None and remote is None:
        raise SpecError(
            f"--shard {shard}: needs --remote NAME, the git remote the finished experiments "
            "are pushed to (else they stay on this machine)"
        )
    if remote is not None:
        shards.check_remote(remote)  # before anything is queued or pulled
        # what every machine has finished so far: a shard rerun anywhere runs only the rest
        print(f"ablate: fetching the experiments on {remote} (dvc exp pull --no-cache)")
        shards.fetch_refs(remote)
    if shard is not None:
        print(
            f"ablate: runs {shards.fingerprint(runs)} (every machine of this study must print "
            "the same: same commit, spec and --seeds)"
        )
    mine = runs if shard is None else shards.shard_runs(runs, shard)
    return _Plan(spec, runs, mine, kept_path, kept, out_root, shard, remote, params_path)


def _collect(
    plan: _Plan, key: RunKey
) -> tuple[dict[str, records.Record], dict[str, records.Record]]:
    """(the experiments that stand for runs, everything that does: those and the records)."""
    matched = match(plan.runs, queue.experiments(), key)
    return matched, with_records(plan.runs, plan.kept, matched, key)


def _execute(
    plan: _Plan, done: dict[str, records.Record], jobs: int, key: RunKey
) -> dict[str, str] | int:
    """Queue this machine's runs that nothing stands for, run them, and wait: run name -> why
    it has no results (a failed or lost experiment), or an exit code when interrupted."""
    runs, mine, shard = plan.runs, plan.mine, plan.shard
    missing = [r for r in mine if r.name not in done]
    todo = _unique(missing, key)
    alike = len(missing) - len(todo)
    share = "" if shard is None else f"shard {shard}: {len(mine)} of "
    n_rows, n_seeds = len({r.row.index for r in runs}), len({r.seed for r in runs})
    print(
        f"ablate: {share}{len(runs)} runs ({n_rows} rows x {n_seeds} seeds), "
        f"{len(mine) - len(missing)} already done, {len(todo)} queued"
        + (f" ({alike} with the params of another run: one experiment for both)" if alike else "")
    )
    if not todo:
        return {}
    available = cores()
    if jobs > available:
        print(
            f"ablate: warning: --jobs {jobs} on {available} cores: each experiment "
            "gets one thread and they still share the cores (slower per row)",
            file=sys.stderr,
        )
    threads = threads_per_job(jobs, available)
    if plan.remote is not None:
        shards.auto_push_env(plan.remote)  # each experiment leaves as it finishes
    targets = _table_targets(plan.params_path)
    before = {t.task for t in queue.queue_tasks()}
    started = False
    try:
        queued = queue.queue_runs(todo, threads, targets=targets)
        started = True  # from here on the workers may have taken runs
        queue.start_workers(jobs, threads)
        tasks = queue.wait_for(
            queued, before, jobs=jobs, restart=lambda: queue.start_workers(jobs, threads)
        )
    except KeyboardInterrupt:
        return _interrupted(before, plan.spec, started)
    failed: dict[str, str] = {}
    for todo_run, name in zip(todo, queued, strict=True):
        task = tasks.get(name)
        reason = None
        if task is not None and task.status == "Success":
            reason = (
                f"{name}: finished, but its commit's stage inputs or params differ "
                "from the workspace's now (edited while it ran?)"
            )
        if task is not None and task.status == "Failed":
            reason = f"{name}: {queue.failure_reason(task.task)}"
        elif task is not None and task.status == "Lost":
            reason = f"{name}: lost (`dvc queue status` stopped listing it)"
        if reason:
            ran = key(todo_run.resolved)
            failed |= {r.name: reason for r in runs if key(r.resolved) == ran}
    return failed


def _publish(
    plan: _Plan,
    matched: dict[str, records.Record],
    done: dict[str, records.Record],
    failed: dict[str, str],
    collect_only: bool,
) -> int:
    """Record what finished, push it (--remote), and write the table once every run has
    results (else print what there is and say what is missing)."""
    spec, runs, mine, shard, remote = plan.spec, plan.runs, plan.mine, plan.shard, plan.remote
    recorded: list[str] = []
    if done:  # before any push: a push that fails loses no record
        held = records.save(plan.kept_path, list(done.values()))
        # a record that won over this clone's experiment, or stands where it has none (on a
        # tie the experiment itself is kept: with_records lists it first)
        recorded = [n for n, r in done.items() if r is not matched.get(n)]
        print(
            f"ablate: {plan.kept_path} holds {held} record(s)"
            + (f"; {len(recorded)} of this spec's runs stand on those alone" if recorded else "")
        )
    if remote is not None and not collect_only:  # all: what auto-push missed, earlier runs
        ours = [matched[r.name].experiment for r in mine if r.name in matched]
        print(f"ablate: pushed {shards.push(remote, ours)} experiment(s) to {remote}")
    if shard is not None:
        left = [r.name for r in mine if r.name not in done]
        if left:
            reasons = "; ".join(f"{n} ({failed.get(n, 'no results')})" for n in left)
            print(f"ablate: shard {shard}: {len(left)} run(s) have no results: {reasons}; "
                  "rerunning this shard runs only those", file=sys.stderr)  # fmt: skip
            return 1
        print(
            f"ablate: shard {shard}: all {len(mine)} of its runs are done and on {remote}"
            + (
                f" or in {plan.kept_path} (commit it)"
                if any(r.name in recorded for r in mine)
                else ""
            )
            + "; "
            f"`ferx-ablate {spec.path} --collect-only --remote {remote}` on any clone "
            "writes the table"
        )
        return 0
    finished = results(runs, done, spec.model)
    if note := precision_note(finished):
        print(f"ablate: {note}", file=sys.stderr)
    rows = table_records(runs, finished, public_labels(finished, plan.params_path))
    missing = [r.name for r in runs if r.name not in done]
    if not missing:
        print(write_outputs(spec, rows, plan.out_root / spec.name))
        return 0
    print(markdown(spec, rows))
    reasons = "; ".join(f"{name} ({failed.get(name, 'no results')})" for name in missing)
    print(
        f"ablate: {len(missing)} of {len(runs)} runs have no results: {reasons}. "
        f"{plan.out_root / spec.name}/ keeps its previous table until every run has results"
        + (
            f"; rows of a shard that did not finish: rerun `--shard K/N --remote {remote}` "
            "on any machine, it runs only the missing ones"
            if remote is not None
            else ""
        ),
        file=sys.stderr,
    )
    return 1


def run(
    spec: Spec,
    jobs: int,
    collect_only: bool,
    seeds: tuple[int, ...] = (),
    out_root: Path = paths.ABLATIONS,
    params_path: Path = DEFAULT_PARAMS_PATH,
    shard: shards.Shard | None = None,
    remote: str | None = None,
) -> int:
    """Plan, execute (unless --collect-only), collect and publish. The workspace's run keys
    are computed once for each state of it: before the runs, and again after them (a file
    edited while they ran makes their results stand for the state they ran on, not today's)."""
    plan = _plan(spec, collect_only, seeds, out_root, params_path, shard, remote)
    key = _fingerprints()
    matched, done = _collect(plan, key)
    if collect_only and remote is not None:  # the spec's outputs too, not every experiment's
        shards.pull_outputs(remote, [r.experiment for r in matched.values()])
    failed: dict[str, str] = {}
    if not collect_only:
        executed = _execute(plan, done, jobs, key)
        if isinstance(executed, int):
            return executed
        failed = executed
        if len({r.name for r in plan.mine} - set(done)):  # something ran: read it back
            key = _fingerprints()
            matched, done = _collect(plan, key)
    return _publish(plan, matched, done, failed, collect_only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferx-ablate", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="the ablation spec (YAML), e.g. ablations/recipe.yaml")
    parser.add_argument(
        "--jobs", "-j", type=int, default=1, help="experiments run at once (cores shared out)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="train.seed values, each row once per seed"
    )
    parser.add_argument("--collect-only", action="store_true", help="only collect and render")
    parser.add_argument(
        "--shard", metavar="K/N", help="run only shard K of N of the runs (needs --remote)"
    )
    parser.add_argument(
        "--remote",
        metavar="NAME",
        help="git remote to push finished experiments to (outputs: the default DVC remote); "
        "with --collect-only, to pull every experiment from first",
    )
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise SpecError("--jobs: must be at least 1")
        seeds = check_seeds(args.seeds, "--seeds") if args.seeds is not None else ()
        shard = shards.parse_shard(args.shard) if args.shard is not None else None
        return run(
            load_spec(args.spec),
            args.jobs,
            args.collect_only,
            seeds,
            shard=shard,
            remote=args.remote,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while reading or writing, with nothing of ours in the queue
        print(f"\nablate: interrupted; `ferx-ablate {args.spec} --collect-only` redoes the table",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
