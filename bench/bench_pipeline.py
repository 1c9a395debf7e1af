"""Wall time of every pipeline stage.

    python bench/bench_pipeline.py [--whole] [--force] [--md]

Run from the project root. By default each stage runs through its own
`dvc repro --single-item`, in dvc.yaml's order (a valid order of the DAG here); with --force
each one reruns even when up to date, so the table is a full pipeline run. With --whole it runs
one plain `dvc repro` (the README's command), echoes its output and times each stage from the
moment DVC announces it to the next announcement (or the end). Prints one row per stage and the
total; --md prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ferx.cpu import describe_cpu


def stage_names(dvc_yaml: Path) -> list[str]:
    """dvc.yaml's stages in order, matrix stages expanded as DVC names them."""
    names = []
    for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        matrix = stage.get("matrix")
        if not matrix:
            names.append(name)
            continue
        combos = [[]]
        for values in matrix.values():
            combos = [[*c, str(v)] for c in combos for v in values]
        names.extend(f"{name}@{'-'.join(c)}" for c in combos)
    return names


def time_each_stage(env: dict[str, str]) -> list[tuple[str, float]]:
    """(stage, seconds) for the stages that ran in an end-to-end `dvc repro`."""
    stage_start = re.compile(r"^Running stage '([^']+)':")
    rows: list[tuple[str, float]] = []
    current, since = None, time.perf_counter()
    command = [sys.executable, "-m", "dvc", "repro"]
    # unbuffered, so DVC's "Running stage" lines arrive when they are printed
    process = subprocess.Popen(
        command,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    for line in process.stdout:
        print(line, end="", flush=True)
        match = stage_start.match(line)
        if match:
            now = time.perf_counter()
            if current is not None:
                rows.append((current, now - since))
            current, since = match.group(1), now
    if current is not None:
        rows.append((current, time.perf_counter() - since))
    if process.wait() != 0:
        sys.exit(f"dvc repro failed (exit {process.returncode})")
    return rows


def time_stage_by_stage(env: dict[str, str], force: bool) -> list[tuple[str, float]]:
    rows = []
    for name in stage_names(Path("dvc.yaml")):
        command = [sys.executable, "-m", "dvc", "repro", "--single-item", name]
        start = time.perf_counter()
        result = subprocess.run([*command, *(["--force"] if force else [])], env=env)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"stage {name} failed after {seconds:.1f} s")
        rows.append((name, seconds))
        print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whole", action="store_true", help="one `dvc repro`, timed per stage")
    parser.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    parser.add_argument("--md", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    rows = time_each_stage(env) if args.whole else time_stage_by_stage(env, args.force)
    how = "one dvc repro" if args.whole else "forced" if args.force else "stage-by-stage"
    total = sum(s for _, s in rows)
    print(f"\n{os.cpu_count()} CPUs; {how} run of {len(rows)} stages")
    if args.md:
        print("| stage | wall time |\n|---|---:|")
        for name, seconds in rows:
            print(f"| `{name}` | {seconds / 60:.1f} min ({seconds:.0f} s) |")
        print(f"| **total** | **{total / 60:.1f} min ({total:.0f} s)** |")
    else:
        for name, seconds in rows:
            print(f"{name:<34} {seconds:8.1f} s")
        print(f"{'total':<34} {total:8.1f} s ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
