"""Time the prepare stage on a real FER2013 CSV against the naive per-row parse.

    python bench/bench_prepare.py [--csv ../shared/data/fer2013.csv.gz]

A .gz is decompressed to a temporary file first, so the stage reads the plain 300 MB CSV.
Prints: the whole stage's wall time (a fresh `python stages/prepare.py` process, imports
included), the vectorised parse alone, the naive parse (`np.array([int(v) for v in
s.split()])` per row) and the speed-up of the stage over the naive parse.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from ferx.cpu import describe_cpu

ROOT = Path(__file__).resolve().parents[1]


def naive_parse(path: Path) -> np.ndarray:
    with open(path) as handle:
        header = [c.strip().lower() for c in handle.readline().split(",")]
        column = header.index("pixels")
        rows = [np.array([int(v) for v in line.split(",")[column].split()]) for line in handle]
    return np.stack(rows).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=ROOT.parent / "shared/data/fer2013.csv.gz")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    from ferx.data.fercsv import read_fer_csv

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = work / "fer2013.csv"
        if args.csv.suffix == ".gz":
            with gzip.open(args.csv) as src, open(csv, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
        else:
            shutil.copy(args.csv, csv)
        (work / "params.yaml").write_text(yaml.safe_dump({"prepare": {"raw": str(csv)}}))
        print(f"input: {csv.stat().st_size / 1e6:.0f} MB CSV, {os.cpu_count()} CPUs")

        stage = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "stages/prepare.py")], cwd=work, check=True)
            stage.append(time.perf_counter() - start)
        parse = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            table = read_fer_csv(csv)
            parse.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive = naive_parse(csv)
        naive_s = time.perf_counter() - start
        assert np.array_equal(naive.reshape(table.pixels.shape), table.pixels), "parsers disagree"

    best_stage, best_parse = min(stage), min(parse)
    print(
        f"prepare stage (whole process), best of {args.repeats}: {best_stage:.2f} s "
        f"(all: {', '.join(f'{t:.2f}' for t in stage)})"
    )
    print(f"vectorised parse alone, best of {args.repeats}: {best_parse:.2f} s")
    print(f"naive per-row parse: {naive_s:.2f} s (pixels identical)")
    print(f"speed-up, naive parse / whole stage: {naive_s / best_stage:.1f}x")
    print(f"speed-up, naive parse / vectorised parse: {naive_s / best_parse:.1f}x")


if __name__ == "__main__":
    main()
