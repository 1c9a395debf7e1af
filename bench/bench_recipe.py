"""What each recipe ingredient costs a training epoch on this CPU, in one run.

    python bench/bench_recipe.py [--rounds 5] [--seconds 8] [--params params.yaml]
                                 [--only crop40 mixup ...]

Times the training loop's real step (gather, augment_batch, mix_batch, train_step, the EMA
update when on) on random 48x48 faces for params.yaml's train section as it is ("default",
train.precision as it resolves here) and with one ingredient turned on at a time (the
`RECIPES` below: random crops, mixup, CutMix, squeeze-and-excitation, ECA, the warmed-up
EMA), alternately round by round so that the machine's drift hits all alike. Prints each
one's median training images/s, its ratio to the default, the seconds one FER2013 epoch's
steps take (28,709 faces; the two per-epoch evaluations of whole faces come on top and do not
change with crops), and how many epochs fit in the default's minutes: what "spend the saving
on more epochs" (issue 36) is sized by. FLOPs per face from fvcore beside each.
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

import torch
from bench_train import steps_per_second

from ferx.analysis.cost import count_flops
from ferx.cpu import describe_cpu
from ferx.models import build_model
from ferx.models.inference import memory_format
from ferx.params import RuntimeParams, TrainParams, load_params
from ferx.training.augment import augment_batch, mix_batch
from ferx.training.loop import train_step
from ferx.training.optim import make_ema, make_optimizer
from ferx.training.precision import resolve_precision
from ferx.training.run import model_config

TRAINING_FACES = 28_709  # FER2013's Training split

# name -> the train keys it sets (dotted, below the train section)
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "crop44": {"augment.crop": 44},
    "crop40": {"augment.crop": 40},
    "mixup": {"augment.mixup": 0.2},
    "cutmix": {"augment.cutmix": 1.0},
    "se": {"model.attention": "se"},
    "eca": {"model.attention": "eca"},
    "ema_warmup": {"ema": 0.999, "ema_warmup": True},
}


def with_options(train: TrainParams, options: dict[str, Any]) -> TrainParams:
    """`train` with dotted keys set (validated like params.yaml)."""
    raw = train.model_dump()
    for dotted, value in options.items():
        *parents, leaf = dotted.split(".")
        section = raw
        for parent in parents:
            section = section[parent]
        section[leaf] = value
    return TrainParams.model_validate(raw)


def step_rate(train: TrainParams, runtime: RuntimeParams, seconds: float) -> float:
    """Training images/s of the loop's step for `train` (precision resolved as the loop does)."""
    train = train.model_copy(
        update={"precision": resolve_precision(train.precision, torch.device("cpu")).precision}
    )
    torch.manual_seed(0)
    fmt = memory_format(runtime.memory_format)
    model = build_model(model_config(train.model)).to(memory_format=fmt).train()
    optimizer = make_optimizer(model, train)
    ema = make_ema(model, train.ema, train.ema_warmup)
    images = torch.randint(0, 256, (8192, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (8192,))
    generator = torch.Generator().manual_seed(0)
    batch = train.batch_size

    def step(i: int) -> None:
        index = torch.arange(i, i + batch) % len(images)
        x = augment_batch(images[index].float(), train.augment, generator)
        x, mix = mix_batch(x, train.augment, generator)
        x = x.contiguous(memory_format=fmt)
        train_step(model, x, labels[index], train, optimizer, mix=mix)
        if ema is not None:
            ema.update_parameters(model)

    return steps_per_second(step, batch, seconds) * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=os.environ.get("FERX_PARAMS", "params.yaml"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--only", nargs="+", choices=list(RECIPES)[1:], help="these, and default")
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    params = load_params(args.params)
    names = ["default", *(args.only or list(RECIPES)[1:])]
    trains = {name: with_options(params.train, RECIPES[name]) for name in names}
    resolved = resolve_precision(params.train.precision, torch.device("cpu"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.params}: "
        f"{params.train.model.arch} {list(params.train.model.widths)}, precision "
        f"{params.train.precision} -> {resolved.precision}, batch {params.train.batch_size}, "
        f"{params.runtime.memory_format}",
        flush=True,
    )
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            rates[name].append(step_rate(trains[name], params.runtime, args.seconds))
        print(
            f"round {round_ + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in names),
            flush=True,
        )
    median = {name: statistics.median(values) for name, values in rates.items()}
    epoch = {name: TRAINING_FACES / rate for name, rate in median.items()}
    print(
        f"\n{'recipe':<12} {'img/s':>7} {'x default':>10} {'epoch s':>8} "
        f"{'epochs in default minutes':>26} {'MFLOPs/face':>12}"
    )
    for name in names:
        crop = trains[name].augment.crop or 48
        model = build_model(model_config(trains[name].model)).eval()
        mflops = count_flops(model, side=crop) / 1e6
        ratio = median[name] / median["default"]
        fits = params.train.epochs * epoch["default"] / epoch[name]
        print(
            f"{name:<12} {median[name]:7.0f} {ratio:10.2f} {epoch[name]:8.1f} "
            f"{fits:26.1f} {mflops:12.2f}"
        )


if __name__ == "__main__":
    main()
