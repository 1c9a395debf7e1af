"""What each stage pays before doing any work: the wall time of a fresh Python process that
imports the stage script's modules (the ferx import closure, found by
ferx.training.source_code), and which heavy libraries that pulls in.

    python bench/bench_imports.py [--repeats 5]

Prints one line per stage: median / min seconds over the repeats, and the heavy modules loaded.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferx.cpu import describe_cpu  # noqa: E402
from ferx.training.source_code import import_closure, module_name  # noqa: E402

HEAVY = ("torch", "torchvision", "captum", "matplotlib", "sklearn", "fvcore", "cv2", "dvclive")


def import_code(stage: Path) -> str:
    modules = sorted(module_name(path) for path in import_closure([stage]))
    return (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    baseline = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - start)
    print(f"python itself: median {statistics.median(baseline):.2f} s")
    for stage in sorted((ROOT / "stages").glob("*.py")):
        code = import_code(stage)
        times, heavy = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            )
            times.append(time.perf_counter() - start)
            heavy = result.stdout.strip()
        print(
            f"{stage.stem:<12} imports: median {statistics.median(times):5.2f} s "
            f"(min {min(times):.2f})  heavy: {heavy or '-'}"
        )


if __name__ == "__main__":
    main()
