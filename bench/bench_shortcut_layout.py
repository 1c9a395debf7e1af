"""The training step with the stride-2 shortcut sliced in NCHW terms (the 1x1 layer until
2026-12-03) against today's, which slices the NHWC view, alternately in one run.

    python bench/bench_shortcut_layout.py [--rounds 3] [--seconds 8] [--precision fp32 bf16]

Both compute the same products and sums; the old one hands back the shortcut's input gradient
in NCHW, and with it every residual module's output gradient, so max-pool and BatchNorm
backward copy it to channels_last and take their slow paths. Prints each round's img/s and,
per precision, the ratio of the medians (today's / the old layer's) as its last lines.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from bench_train import nchw_sliced_forward, train_rate

from ferx.models import layers
from ferx.params import load_params

TODAY = layers.Pointwise.forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    train = load_params(args.params).train
    widths = tuple(train.model.widths)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; mini_xception {widths}")
    ratios = {}
    for precision in args.precision:
        rates: dict[str, list[float]] = {"old": [], "today": []}
        for round_ in range(args.rounds):
            for name, forward in (("old", nchw_sliced_forward), ("today", TODAY)):
                layers.Pointwise.forward = forward
                rate = train_rate(
                    "channels_last", 32, args.seconds, "mini_xception", precision, widths
                )
                rates[name].append(rate)
            layers.Pointwise.forward = TODAY
            print(
                f"{precision} round {round_ + 1}: NCHW-sliced shortcut {rates['old'][-1]:.0f} "
                f"img/s, today's {rates['today'][-1]:.0f} img/s",
                flush=True,
            )
        ratios[precision] = statistics.median(rates["today"]) / statistics.median(rates["old"])
    for precision, ratio in ratios.items():
        print(f"{precision}: today's shortcut vs NCHW-sliced: {ratio:.2f}x")


if __name__ == "__main__":
    main()
