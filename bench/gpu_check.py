"""The GPU path, checked in a few minutes on a machine with CUDA: training-step speed, a run
that repeats itself, and a short synthetic `dvc repro` on the GPU.

    python bench/gpu_check.py                 # needs CUDA; under 5 minutes on one GPU
    python bench/gpu_check.py --device cpu    # the same steps on the CPU (a dry run)

1. img/s of the default network's training step (augmentation, forward, backward, Adam) at
   batch 32 and 256, in fp32, bf16 and fp16 autocast: what a ferx run gets, not the GPU's
   peak (augmentation stays on the CPU, as in the loop, and the deterministic settings are
   on, cuDNN autotuning off), so at small batches the CPU may be what it measures;
2. two identical 2-epoch fits on tiny synthetic data under the deterministic settings
   (ferx.training.device.deterministic_cuda): identical history and weights, or it says not;
3. the whole pipeline on the synthetic stand-in in a temporary `git clone` of this repository
   (so it runs the committed HEAD: commit first what you want checked; `dvc repro` with
   train.epochs 3, improve.epochs 1, runtime.device set), with its wall time and the device
   metrics/train.json records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferx.cpu import describe_cpu  # noqa: E402
from ferx.models import ModelConfig, build_model  # noqa: E402
from ferx.params import AugmentParams, RuntimeParams, TrainParams  # noqa: E402
from ferx.training.augment import augment_batch  # noqa: E402
from ferx.training.device import deterministic_cuda  # noqa: E402
from ferx.training.loop import fit, train_step  # noqa: E402
from ferx.training.optim import make_optimizer  # noqa: E402
from ferx.training.run_spec import RunSpec  # noqa: E402


def step_rate(device: torch.device, precision: str, batch: int, seconds: float) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(32, 64, 128, 256), attention="eca")).to(device).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TrainParams())
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    images = torch.randint(0, 256, (4096, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (4096,), device=device)
    generator = torch.Generator().manual_seed(0)
    params = TrainParams(batch_size=batch, precision=precision)

    def step(i: int) -> None:  # the loop's own step (ferx.training.loop.train_step)
        index = torch.arange(i, i + batch) % len(images)
        x = augment_batch(images[index].float(), AugmentParams(), generator).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        train_step(model, x, labels[index.to(device)], params, optimizer, scaler=scaler)

    for i in range(5):
        step(i * batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(done)
        done += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def repeats_itself(device: str) -> bool:
    from ferx.data.synthetic import make_synthetic_fer
    from ferx.training.run_spec import splits_of

    splits = splits_of(make_synthetic_fer(200, 0))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("a", "b"):
            torch.manual_seed(0)
            model = build_model(ModelConfig(widths=(16, 32, 64)))
            spec = RunSpec("check", Path(tmp) / f"{name}.pt")
            params = TrainParams(epochs=2, batch_size=32)
            results.append(fit(model, splits, params, spec, RuntimeParams(device=device)))
    a, b = results

    def rows(history: list[dict]) -> list[dict]:  # every metric, not the wall time
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    same = rows(a.history) == rows(b.history) and all(
        torch.equal(v, b.best_state_dict[k]) for k, v in a.best_state_dict.items()
    )
    return same


def short_repro(device: str) -> tuple[float, dict]:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "ferx"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["train"]["epochs"] = 3
        params["improve"]["epochs"] = 1
        params["runtime"]["device"] = device
        params["prepare"]["source"] = "synthetic"  # the clone has no FER2013 (git only)
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        start = time.perf_counter()
        repro = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
        )
        if repro.returncode != 0:
            raise SystemExit(
                f"gpu_check: dvc repro failed:\n{(repro.stdout + repro.stderr)[-3000:]}"
            )
        seconds = time.perf_counter() - start
        record = json.loads((clone / "metrics/train.json").read_text())["reproducibility"]
    return seconds, record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False)")
        return 2
    device = torch.device(args.device)
    with deterministic_cuda() if device.type == "cuda" else contextlib.nullcontext():
        return _check(device, args.seconds)


def _check(device: torch.device, seconds: float) -> int:
    if device.type == "cuda":
        print(
            f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
        )
    else:
        print(f"gpu_check: CPU dry run, torch {torch.__version__}")
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    for batch in (32, 256):
        for precision in precisions:
            rate = step_rate(device, precision, batch, seconds)
            print(f"train step, batch {batch:>3}, {precision}: {rate:8.0f} img/s", flush=True)
    same = repeats_itself(device.type)
    print(f"two identical 2-epoch fits: {'bit-identical' if same else 'DIFFERENT'}", flush=True)
    took, record = short_repro(device.type)
    print(
        f"synthetic dvc repro (train 3 epochs, improve 1): {took:.0f} s on "
        f"{record['device']} ({record['precision']}, {record['memory_format']})"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
