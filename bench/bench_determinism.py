"""What changes the bits of a training run: threads, instruction set, inference batch, layout.

    python bench/bench_determinism.py [--epochs 3] [--n-samples 1500] [--precision fp32 bf16]

Runs the real train stage (`python -m stages.train`) on the synthetic stand-in, once per
variant, each in its own folder, one at a time (two torch jobs on one machine would only slow
each other): the default runtime twice (run to run), then one setting changed per variant.
Prints, per variant, whether every weight of the kept model equals the reference run's bit
for bit, the largest weight difference, and the kept epoch, PublicTest accuracy and loss the
run reports, with the reproducibility record the stage writes into metrics/train.json.

The instruction-set cap uses the switches each library reads: ATEN_CPU_CAPABILITY=avx2
(PyTorch's own vectorised kernels), ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's convolutions, matmuls)
and MKL_CBWR=AVX2 (MKL's conditional numerical reproducibility).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ferx.cpu import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
# name -> (runtime overrides, environment overrides); the first is every other's reference
VARIANTS = {
    "reference (2 threads)": ({}, {}),
    "same again": ({}, {}),
    "1 thread": ({"threads": 1}, {}),
    "AVX2 cap": ({}, AVX2),
    "eval batch 128": ({"eval_batch_size": 128}, {}),
    "contiguous layout": ({"memory_format": "contiguous"}, {}),
}


def _params(epochs: int, n_samples: int, precision: str, runtime: dict) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"]["source"] = "synthetic"
    params["prepare"]["synthetic"]["n_samples"] = n_samples
    params["train"]["epochs"] = epochs
    params["train"]["precision"] = precision
    params["runtime"] |= {"threads": 2, **runtime}
    return params


def _run(folder: Path, module: str, params: dict, env: dict[str, str]) -> float:
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": str(params["runtime"]["threads"]),
        **env,
    }
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=folder, env=environment, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"{module} failed in {folder}:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def _weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _compare(reference: dict, other: dict) -> tuple[bool, float]:
    import torch

    same = all(torch.equal(reference[k], other[k]) for k in reference)
    worst = max(
        float((reference[k].double() - other[k].double()).abs().max())
        for k in reference
        if reference[k].is_floating_point()
    )
    return same, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=1500)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    with tempfile.TemporaryDirectory(prefix="ferx-bits-") as tmp:
        base = Path(tmp) / "prepared"
        base.mkdir()
        _run(base, "stages.prepare", _params(args.epochs, args.n_samples, "fp32", {}), {})
        print(
            f"train stage, synthetic stand-in ({args.n_samples} faces), {args.epochs} epochs, "
            "each variant against the first of its precision\n"
        )
        print(
            "| precision | variant | weights bit-identical | max abs weight diff | kept epoch "
            "| PublicTest accuracy | PublicTest loss | cpu_capability | threads | s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for precision in args.precision:
            reference = None
            for name, (runtime, env) in VARIANTS.items():
                folder = Path(tmp) / f"{precision}-{len(os.listdir(tmp))}"
                shutil.copytree(base, folder)
                params = _params(args.epochs, args.n_samples, precision, runtime)
                seconds = _run(folder, "stages.train", params, env)
                metrics = json.loads((folder / "metrics/train.json").read_text())
                weights = _weights(folder / "models/baseline.pt")
                reference = reference or weights
                same, worst = _compare(reference, weights)
                record = metrics["reproducibility"]
                print(
                    f"| {precision} | {name} | {'yes' if same else 'no'} | {worst:.2e} "
                    f"| {metrics['best_epoch']} | {metrics['public']['accuracy']:.4f} "
                    f"| {metrics['public']['loss']:.6f} | {record['cpu_capability']} "
                    f"| {record['threads']} | {seconds:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
