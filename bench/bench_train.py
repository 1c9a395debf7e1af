"""Training and inference throughput of the networks on this machine's CPU.

    python bench/bench_train.py [--seconds 8] [--repeats 3] [--threads 0] [--batch 32 64]
                                [--arch mini_xception baseline_cnn resnet18] [--layout ...]
                                [--precision fp32 bf16] [--widths 16,32,64,128 32,64,128,256]

Uses random 48x48 uint8 images (speed does not depend on the pixels) and the real training
step: augmentation, forward, backward, the training loop's (fused) Adam step. Prints images/s
(median and spread of the repeats) for both memory formats at each training batch size, and
inference images/s at several batch sizes, for each network asked for (default: the
mini-Xception), and the seconds one FER2013 training epoch (28,709 faces) takes at that rate.
`--precision bf16` also times the training step under bfloat16 autocast on the CPU (forward
and loss in bf16 where PyTorch's autocast allows, weights and optimizer in fp32): the lever
to try on CPUs with AVX-512 BF16 or AMX. `--widths` times mini-Xceptions of other module
widths (`train.model.widths`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ferx.labels import ARCHITECTURES
from ferx.models import ModelConfig, build_model
from ferx.models.inference import memory_format, predict_logits
from ferx.params import AugmentParams, TrainParams
from ferx.training.augment import augment_batch
from ferx.training.optim import make_optimizer

TRAINING_FACES = 28_709  # FER2013's Training split


def train_rate(
    layout: str,
    batch: int,
    seconds: float,
    arch: str = "mini_xception",
    precision: str = "fp32",
    widths: tuple[int, ...] | None = None,
) -> float:
    torch.manual_seed(0)
    fmt = memory_format(layout)
    model = build_model(_config(arch, widths)).to(memory_format=fmt)
    optimizer = make_optimizer(model, TrainParams())
    images = torch.randint(0, 256, (8192, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (8192,))
    generator = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        index = torch.arange(i, i + batch) % len(images)
        x = augment_batch(images[index].float(), AugmentParams(), generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x.contiguous(memory_format=fmt))
        loss = F.cross_entropy(logits.float(), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(3):
        step(i * batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(done)
        done += batch
    return done / (time.perf_counter() - start)


def _config(arch: str, widths: tuple[int, ...] | None) -> ModelConfig:
    return ModelConfig(arch=arch, widths=widths) if widths else ModelConfig(arch=arch)


def inference_rate(
    layout: str,
    batch: int,
    seconds: float,
    arch: str = "mini_xception",
    widths: tuple[int, ...] | None = None,
) -> float:
    model = build_model(_config(arch, widths)).eval()
    images = torch.randint(0, 256, (4096, 1, 48, 48), dtype=torch.uint8)
    predict_logits(model, images[:batch], batch, layout=layout)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict_logits(model, images, batch, layout=layout)
        done += len(images)
    return done / (time.perf_counter() - start)


def report(name: str, rates: list[float], epoch: bool = False) -> None:
    median = statistics.median(rates)
    per_epoch = f", {TRAINING_FACES / median:.0f} s per epoch" if epoch else ""
    print(
        f"{name:<58} median {median:7.0f} img/s "
        f"(min {min(rates):.0f}, max {max(rates):.0f}, n={len(rates)}){per_epoch}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=["mini_xception"])
    parser.add_argument(
        "--layout",
        nargs="+",
        choices=["channels_last", "contiguous"],
        default=["channels_last", "contiguous"],
    )
    parser.add_argument("--inference-batch", type=int, nargs="+", default=[64, 128, 512])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    parser.add_argument(
        "--widths",
        nargs="+",
        type=lambda text: tuple(int(w) for w in text.split(",")),
        default=[None],
        help="mini-Xception module widths to time, e.g. 16,32,64,128 32,64,128,256",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    networks = [(arch, None) for arch in args.arch if arch != "mini_xception"]
    if "mini_xception" in args.arch:
        networks[:0] = [("mini_xception", widths) for widths in args.widths]
    for arch, widths in networks:
        label = arch + (f" {','.join(map(str, widths))}" if widths else "")
        for layout in args.layout:
            for batch in args.batch:
                for precision in args.precision:
                    rates = [
                        train_rate(layout, batch, args.seconds, arch, precision, widths)
                        for _ in range(args.repeats)
                    ]
                    name = f"{label} train, batch {batch}, {layout}" + (
                        ", bf16 autocast" if precision == "bf16" else ""
                    )
                    report(name, rates, epoch=True)
        for layout in args.layout:
            for batch in args.inference_batch:
                rates = [
                    inference_rate(layout, batch, args.seconds / 2, arch, widths)
                    for _ in range(args.repeats)
                ]
                report(f"{label} inference, batch {batch}, {layout}", rates)


if __name__ == "__main__":
    main()
