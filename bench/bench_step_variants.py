"""One training step of the default network, eager or under torch.compile, for trying what
might make it faster (run under LD_PRELOAD or malloc settings to try an allocator).

    python bench/bench_step_variants.py fp32 eager          # or: bf16, compile
    LD_PRELOAD=libtcmalloc_minimal.so.4 python bench/bench_step_variants.py fp32 eager

Prints the seconds the first two steps took (torch.compile compiles there) and the img/s of
the steps that follow over --seconds (default 10). The machine's speed drifts by tens of
percent within minutes: alternate the variants over several rounds before believing a ratio.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from ferx.cpu import describe_cpu
from ferx.models import ModelConfig, build_model
from ferx.params import AugmentParams, TrainParams
from ferx.training.augment import augment_batch
from ferx.training.optim import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("precision", choices=["fp32", "bf16"])
    parser.add_argument("mode", choices=["eager", "compile"])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(32, 64, 128, 256), attention="eca"))  # the default
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model, TrainParams())
    run = torch.compile(model) if args.mode == "compile" else model
    images = torch.randint(0, 256, (4096, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (4096,))
    generator = torch.Generator().manual_seed(0)

    def step(i: int, batch: int = 32) -> float:
        index = torch.arange(i * batch, i * batch + batch) % len(images)
        x = augment_batch(images[index].float(), AugmentParams(), generator)
        with torch.autocast("cpu", torch.bfloat16, enabled=args.precision == "bf16"):
            logits = run(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), labels[index], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    start = time.perf_counter()
    step(0), step(1)
    print(f"{args.mode} {args.precision}: first two steps {time.perf_counter() - start:.1f} s")
    for i in range(5):
        step(i)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        step(n)
        n += 1
    print(f"{args.mode} {args.precision}: {n * 32 / (time.perf_counter() - start):.0f} img/s")


if __name__ == "__main__":
    main()
