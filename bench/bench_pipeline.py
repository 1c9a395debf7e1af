"""Wall time of every pipeline stage, each run through `dvc repro --single-item`.

    python bench/bench_pipeline.py [--force] [--md]

Run from the project root. Stages are taken in dvc.yaml's order (which is a valid order of the
DAG here); with --force each one reruns even when up to date, so the table is a full pipeline
run. Prints one row per stage and the total; --md prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    parser.add_argument("--md", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    rows = []
    for name in stage_names(Path("dvc.yaml")):
        command = [sys.executable, "-m", "dvc", "repro", "--single-item", name]
        start = time.perf_counter()
        result = subprocess.run([*command, *(["--force"] if args.force else [])], env=env)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"stage {name} failed after {seconds:.1f} s")
        rows.append((name, seconds))
        print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    total = sum(s for _, s in rows)
    print(f"\n{os.cpu_count()} CPUs; {'forced ' if args.force else ''}run of {len(rows)} stages")
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
