"""The training step with the stride-2 shortcut sliced in NCHW terms (the 1x1 layer until
2026-12-03) against today's, which slices the NHWC view, alternately in one run.

    python bench/bench_shortcut_layout.py [--rounds 3] [--seconds 8] [--precision fp32 bf16]
    python bench/bench_shortcut_layout.py --gradients

`--gradients` compares instead the first training step's parameter gradients of the two
layers (same weights, same batch), and each against fp32 on today's layer: how far the layout
moves the numbers, beside how far bf16 itself does.

Both compute the same products and sums (in another order in backward); the old one hands
back the shortcut's input gradient in NCHW, and with it every residual module's output
gradient, which max-pool and BatchNorm backward then copy back to channels_last. Prints each
round's img/s and, per precision, the ratio of the medians (today's / the old layer's) as its
last lines.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from bench_train import nchw_sliced_forward, pointwise_forward, train_rate

from ferx.cpu import describe_cpu
from ferx.models import ModelConfig, build_model, layers
from ferx.params import load_params

TODAY = layers.Pointwise.forward


def first_step_gradients(forward, precision: str, widths: tuple[int, ...]) -> dict:
    with pointwise_forward(forward):
        torch.manual_seed(0)
        model = build_model(ModelConfig(widths=widths)).to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(1)
        x = torch.randint(0, 256, (32, 1, 48, 48), generator=generator).float()
        y = torch.randint(0, 7, (32,), generator=generator)
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            logits = model.train()(x.contiguous(memory_format=torch.channels_last))
        F.cross_entropy(logits.float(), y).backward()
        return {name: p.grad for name, p in model.named_parameters()}


def print_gradients(widths: tuple[int, ...]) -> None:
    def worst(a: dict, b: dict) -> str:
        same = sum(torch.equal(a[k], b[k]) for k in a)
        rel = max(((a[k] - b[k]).abs().max() / a[k].abs().max()).item() for k in a)
        return f"{same}/{len(a)} tensors bit-identical, worst max|diff|/max|grad| {rel:.1e}"

    reference = first_step_gradients(TODAY, "fp32", widths)
    for precision in ("fp32", "bf16"):
        old = first_step_gradients(nchw_sliced_forward, precision, widths)
        today = first_step_gradients(TODAY, precision, widths)
        print(f"{precision}: today's layer vs NCHW-sliced: {worst(old, today)}")
        if precision == "bf16":
            print(f"bf16 NCHW-sliced vs fp32: {worst(reference, old)}")
            print(f"bf16 today's vs fp32: {worst(reference, today)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--gradients", action="store_true", help="compare gradients, not speed")
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    train = load_params(args.params).train
    widths = tuple(train.model.widths)
    if args.gradients:
        return print_gradients(widths)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; mini_xception {widths}")
    ratios = {}
    for precision in args.precision:
        rates: dict[str, list[float]] = {"old": [], "today": []}
        for round_ in range(args.rounds):
            variants = [("old", nchw_sliced_forward), ("today", TODAY)]
            for name, forward in variants if round_ % 2 == 0 else variants[::-1]:
                with pointwise_forward(forward):
                    rate = train_rate(
                        "channels_last", 32, args.seconds, "mini_xception", precision, widths
                    )
                rates[name].append(rate)
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
