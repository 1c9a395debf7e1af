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
and loss in bf16 where PyTorch's autocast allows, weights and optimizer in fp32), what
params.yaml's `train.precision: auto` resolves to where bf16 is native (AVX-512 BF16 or AMX);
slow on CPUs without it, where auto trains in fp32.
`--widths` times mini-Xceptions of other module widths (`train.model.widths`).

    python bench/bench_train.py --breakdown [--steps 300] [--precision fp32 bf16] [--profile 60]

Where one train-stage epoch of params.yaml's train section goes: the loop's step phase by phase
(batch gather + augmentation, forward, loss, backward, optimizer step with the scheduler and
EMA, the per-step bookkeeping) timed over `--steps` steps and scaled to an epoch of FER2013's
28,709 faces, then the two per-epoch evaluations (PublicTest, PrivateTest: 3,589 faces each at
runtime.eval_batch_size and runtime.memory_format), the DVCLive log and the resume checkpoint.
Also the achieved training GFLOP/s against the peak this script assumes (printed with how).
`--profile N` adds torch.profiler's operators by self CPU time over N training steps, overall
and by input shape.

    python bench/bench_train.py --auto [--rounds 5] [--seconds 8]

Times the training step of params.yaml's train + runtime sections (train.precision as it
resolves on this CPU: `auto` gives bf16 where bf16 is native, else fp32) against the same step
in explicit fp32 and in explicit bf16, alternately in one run, and prints as its last line
`default (auto -> P) vs explicit Q, the faster here: N.NNx`.

    python bench/bench_train.py --default-vs-fp32 [--rounds 5] [--seconds 8]

Times the training step of params.yaml's train + runtime sections and the fp32 eager
channels_last batch-32 step as it was when the speed issue was filed (the 1x1 layer taking its
stride on the NCHW view), alternately in one run (the machine's speed drifts between runs), and
prints as its last line `default vs fp32 eager: N.NNx` (ratio of the medians). The fp32 step
on today's layer is timed too, and the line before gives the ratio against it.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from ferx.cpu import describe_cpu
from ferx.labels import ARCHITECTURES
from ferx.models import ModelConfig, Pointwise, build_model
from ferx.models.inference import memory_format, predict_logits
from ferx.params import AugmentParams, RuntimeParams, TrainParams, load_params
from ferx.training.augment import augment_batch, mix_batch
from ferx.training.loop import train_step
from ferx.training.optim import make_ema, make_optimizer, make_scheduler
from ferx.training.precision import resolve_precision
from ferx.training.run import model_config

TRAINING_FACES = 28_709  # FER2013's Training split
TEST_FACES = 3_589  # PublicTest, and PrivateTest


def training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: int,
    fmt: torch.memory_format,
    precision: str,
    augment: AugmentParams,
) -> Callable[[int], None]:
    """The loop's step (ferx.training.loop.train_step: forward under autocast in `precision`,
    label-smoothed loss, backward, Adam) on random faces, after the loop's gather and
    augmentation. `step(i)` takes the batch starting at face i."""
    images = torch.randint(0, 256, (8192, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (8192,))
    generator = torch.Generator().manual_seed(0)
    params = TrainParams(batch_size=batch, precision=precision, augment=augment)
    model.train()

    def step(i: int) -> None:
        index = torch.arange(i, i + batch) % len(images)
        x = augment_batch(images[index].float(), augment, generator)
        train_step(model, x.contiguous(memory_format=fmt), labels[index], params, optimizer)

    return step


def train_rate(
    layout: str,
    batch: int,
    seconds: float,
    arch: str = "mini_xception",
    precision: str = "fp32",
    widths: tuple[int, ...] | None = None,
    config: ModelConfig | None = None,
) -> float:
    """Training img/s of `config` (else `arch` at `widths`, no attention)."""
    torch.manual_seed(0)
    fmt = memory_format(layout)
    model = build_model(config or _config(arch, widths)).to(memory_format=fmt)
    optimizer = make_optimizer(model, TrainParams())
    step = training_step(model, optimizer, batch, fmt, precision, AugmentParams())
    return steps_per_second(step, batch, seconds) * batch


def steps_per_second(step: Callable[[int], None], batch: int, seconds: float) -> float:
    """`step(i)` (the batch starting at face i) timed for `seconds` after 3 warm-up steps."""
    for i in range(3):
        step(i * batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(done * batch)
        done += 1
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


def peak_gflops(threads: int) -> tuple[float, str]:
    """fp32 peak of this CPU as assumed here, and how it was reckoned."""
    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = max(mhz, float(line.split(":")[1]))
    except OSError:
        pass
    ghz = mhz / 1000 or 2.6
    # Zen 4: two 256-bit FMA pipes per core (AVX-512 runs as two halves): 16 fp32 FMAs,
    # 32 flops per cycle; bf16 dot products (VDPBF16PS) do twice the multiply-adds
    peak = threads * ghz * 32
    how = f"{threads} cores x {ghz:.2f} GHz (/proc/cpuinfo) x 32 fp32 flops/cycle"
    how += " (2 FMA pipes x 8 lanes x 2 flops)"
    return peak, how


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - start
        return now


def breakdown(train: TrainParams, runtime: RuntimeParams, steps: int) -> dict[str, float]:
    """Seconds per FER2013 epoch for each phase of the loop's step (ferx/training/loop.py,
    `_train_one_epoch`, the same calls in the same order), and for what follows the epoch."""
    from ferx.metrics import summary_metrics
    from ferx.models.checkpoint import save_state
    from ferx.training.loop import freeze_all_but

    torch.manual_seed(0)
    fmt = memory_format(runtime.memory_format)
    model = build_model(_model_config(train))
    model.to(memory_format=fmt)
    freeze_all_but(model, "all")
    epoch_steps = math.ceil(TRAINING_FACES / train.batch_size)
    optimizer = make_optimizer(model, train)
    scheduler = make_scheduler(optimizer, train, epoch_steps)
    ema = make_ema(model, train.ema, train.ema_warmup)
    images = torch.randint(0, 256, (TRAINING_FACES, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (TRAINING_FACES,))
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(TRAINING_FACES, generator=generator)
    timer = _Timer()
    model.train()
    for i in range(steps + 5):
        if i == 5:  # the first steps warm the allocator and oneDNN's kernel cache
            timer = _Timer()
        begin = (i * train.batch_size) % (TRAINING_FACES - train.batch_size)
        t = time.perf_counter()
        index = order[begin : begin + train.batch_size]
        x = images[index].to(torch.float32)
        x = augment_batch(x, train.augment, generator)
        x, mix = mix_batch(x, train.augment, generator)
        x = x.contiguous(memory_format=fmt)
        y = labels[index]
        t = timer.add("augmentation (gather, float, augment, mix)", t)
        with torch.autocast("cpu", torch.bfloat16, enabled=train.precision == "bf16"):
            logits = model(x)
        logits = logits.float()
        t = timer.add("forward", t)
        loss = F.cross_entropy(logits, y, label_smoothing=train.label_smoothing)
        if mix is not None:
            partner = F.cross_entropy(logits, y[mix.partner], label_smoothing=train.label_smoothing)
            loss = mix.weight * loss + (1 - mix.weight) * partner
        t = timer.add("loss", t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t = timer.add("backward", t)
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        scheduler.step()
        t = timer.add("optimizer step (+ scheduler, EMA)", t)
        loss.item()
        F.cross_entropy(logits.detach(), y, reduction="sum").item()
        int((logits.argmax(1) == y).sum())
        timer.add("bookkeeping (.item, accuracy)", t)
    scale = epoch_steps / steps
    per_epoch = {phase: s * scale for phase, s in timer.seconds.items()}
    test = torch.randint(0, 256, (TEST_FACES, 1, 48, 48), dtype=torch.uint8)
    test_labels = torch.randint(0, 7, (TEST_FACES,))
    predict_logits(model, test[:256], runtime.eval_batch_size, layout=runtime.memory_format)
    t = time.perf_counter()
    for _ in range(2):  # PublicTest and PrivateTest
        logits = predict_logits(model, test, runtime.eval_batch_size, layout=runtime.memory_format)
        summary_metrics(logits, test_labels)
    per_epoch["evaluation (PublicTest + PrivateTest)"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        from dvclive import Live

        live = Live(tmp, dvcyaml=False, save_dvc_exp=False, report=None)
        t = time.perf_counter()
        names = ["lr", "train/objective", "train/loss", "train/accuracy"] + [
            f"{split}/{metric}"
            for split in ("public", "private")
            for metric in ("loss", "accuracy", "macro_f1", "balanced_accuracy")
        ]  # the loop's row
        for name in names:
            live.log_metric(name, 0.5)
        live.next_step()
        per_epoch["logging (DVCLive)"] = time.perf_counter() - t
        state = {
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "best_state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": [{"epoch": 1.0}] * 40,
        }
        t = time.perf_counter()
        save_state(Path(tmp) / "state.pt", state)
        per_epoch["checkpoint (atomic torch.save)"] = time.perf_counter() - t
    return per_epoch


def profile_ops(train: TrainParams, runtime: RuntimeParams, steps: int) -> str:
    """torch.profiler over `steps` training steps (after warm-up): the operators by self CPU
    time, and the share of the families that matter (BatchNorm, GEMM, convolution, Adam)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    fmt = memory_format(runtime.memory_format)
    model = build_model(_model_config(train)).to(memory_format=fmt)
    optimizer = make_optimizer(model, train)
    step = training_step(model, optimizer, train.batch_size, fmt, train.precision, train.augment)
    for i in range(5):
        step(i * train.batch_size)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(steps):
            step(i * train.batch_size)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    families = {
        "BatchNorm (forward + backward)": ("batch_norm",),
        "GEMM (aten::mm, addmm: 1x1 convolutions, head)": ("aten::mm", "aten::addmm"),
        "convolution (3x3, depthwise)": ("convolution",),
        "Adam": ("adam",),
    }
    lines = [f"by operator family, self CPU time of {steps} steps:"]
    for family, needles in families.items():
        share = sum(
            e.self_cpu_time_total for e in events if any(n in e.key.lower() for n in needles)
        )
        lines.append(f"  {family:<46} {100 * share / total:5.1f}%")
    table = events.table(sort_by="self_cpu_time_total", row_limit=15)
    # by input shape too: which layer an operator's time belongs to (a copy_ on a 44x44 map
    # is a layout conversion at the first residual module, not the optimizer)
    shapes = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=15, max_shapes_column_width=70
    )
    return "\n".join(lines) + "\n" + table + "\nby input shape:\n" + shapes


def _model_config(train: TrainParams) -> ModelConfig:
    return model_config(train.model)  # random faces: the default dataset statistics


def _train_step_rate(train: TrainParams, runtime: RuntimeParams, seconds: float) -> float:
    """The training step's img/s in `train`'s precision as the loop runs it (auto resolved)."""
    precision = resolve_precision(train.precision, torch.device("cpu")).precision
    # the whole model section (attention included), as the train stage builds it
    return train_rate(
        runtime.memory_format,
        train.batch_size,
        seconds,
        precision=precision,
        config=_model_config(train),
    )


def print_auto(args) -> None:
    """params.yaml's training step (train.precision as it resolves here) against the same step
    in explicit fp32 and explicit bf16, alternately in one run: auto should run at the speed
    of the faster of the two on every CPU."""
    params = load_params(args.params)
    resolved = resolve_precision(params.train.precision, torch.device("cpu"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; default = {args.params}: "
        f"precision {params.train.precision} -> {resolved.precision} ({resolved.reason}), "
        f"batch {params.train.batch_size}, {params.runtime.memory_format}"
    )
    trains = {
        "default": params.train,
        **{p: params.train.model_copy(update={"precision": p}) for p in ("fp32", "bf16")},
    }
    rates = alternate(
        {
            name: partial(_train_step_rate, train, params.runtime, args.seconds)
            for name, train in trains.items()
        },
        args.rounds,
        lambda r: ", ".join(f"{n} {r[n][-1]:.0f} img/s" for n in trains),
    )
    median = {name: statistics.median(values) for name, values in rates.items()}
    faster = max(("fp32", "bf16"), key=median.get)
    print(
        f"median img/s: default {median['default']:.0f}, fp32 {median['fp32']:.0f}, "
        f"bf16 {median['bf16']:.0f}; one FER2013 epoch's steps at the default's rate: "
        f"{TRAINING_FACES / median['default']:.0f} s"
    )
    print(
        f"default ({params.train.precision} -> {resolved.precision}) vs explicit {faster}, "
        f"the faster here: {median['default'] / median[faster]:.2f}x"
    )


def print_breakdown(args) -> None:
    params = load_params(args.params)
    threads = torch.get_num_threads()
    model = build_model(_model_config(params.train))
    from ferx.analysis.cost import count_flops

    macs = count_flops(model)  # fvcore: one multiply-add = one flop
    train_flops = 3 * 2 * macs  # forward, then backward at about twice the forward
    peak, how = peak_gflops(threads)
    print(f"torch {torch.__version__}, {threads} threads; params: {args.params} (train section)")
    print(
        f"model: {params.train.model.arch} {list(params.train.model.widths)}, "
        f"{2 * macs / 1e6:.1f} MFLOP forward, ~{train_flops / 1e6:.0f} MFLOP per training face "
        "(3 x forward)"
    )
    print(f"assumed fp32 peak: {peak:.0f} GFLOP/s = {how}; bf16 dot products: 2x that")
    for precision in args.precision:
        train = params.train.model_copy(update={"precision": precision})
        rates = [_train_step_rate(train, params.runtime, args.seconds) for _ in range(args.repeats)]
        rate = statistics.median(rates)
        achieved = rate * train_flops / 1e9
        print(
            f"\n{precision}: training step {rate:.0f} img/s (median of {args.repeats}) = "
            f"{achieved:.1f} GFLOP/s, {100 * achieved / peak:.0f}% of the fp32 peak"
        )
        phases = breakdown(train, params.runtime, args.steps)
        total = sum(phases.values())
        print(
            f"one epoch, {precision}, batch {train.batch_size}, {params.runtime.memory_format}, "
            f"eval batch {params.runtime.eval_batch_size}: {total:.1f} s"
        )
        for phase, seconds in phases.items():
            print(f"  {phase:<42} {seconds:7.2f} s  {100 * seconds / total:5.1f}%")
        if args.profile:
            print(profile_ops(train, params.runtime, args.profile))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this benchmark: {rss:.0f} MiB")


def nchw_sliced_forward(self: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pointwise.forward as it was until 2026-12-03 (channels_last input only): the stride
    taken on the NCHW view, which hands back the shortcut's input gradient in NCHW."""
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if self.stride[0] > 1:
        x = x[:, :, :: self.stride[0], :: self.stride[1]]
    weight = self.weight.view(self.out_channels, self.in_channels)
    return torch.matmul(x.permute(0, 2, 3, 1), weight.t()).permute(0, 3, 1, 2)


@contextmanager
def pointwise_forward(forward: Callable) -> Iterator[None]:
    """Every Pointwise layer computes with `forward` inside, with today's again after."""
    today = Pointwise.forward
    Pointwise.forward = forward
    try:
        yield
    finally:
        Pointwise.forward = today


def _issue_day_rate(train: TrainParams, runtime: RuntimeParams, seconds: float) -> float:
    """The fp32 eager step as it was when the speed issue was filed (the old 1x1 layer)."""
    with pointwise_forward(nchw_sliced_forward):
        return _train_step_rate(train, runtime, seconds)


def alternate(
    steps: dict[str, Callable[[], float]], rounds: int, line: Callable[[dict], str]
) -> dict[str, list[float]]:
    """Each step's img/s, `rounds` times, the order reversed every other round so that the
    machine's drift hits all alike; a progress line per round."""
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(rounds):
        order = list(steps) if round_ % 2 == 0 else list(steps)[::-1]
        for name in order:
            rates[name].append(steps[name]())
        print(f"round {round_ + 1}: {line(rates)}", flush=True)
    return rates


def print_default_vs_fp32(args) -> None:
    params = load_params(args.params)
    fp32 = params.train.model_copy(update={"precision": "fp32", "batch_size": 32})
    eager = params.runtime.model_copy(update={"memory_format": "channels_last"})
    steps = {
        "default": lambda: _train_step_rate(params.train, params.runtime, args.seconds),
        "fp32": lambda: _train_step_rate(fp32, eager, args.seconds),
        "issue day": lambda: _issue_day_rate(fp32, eager, args.seconds),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; default = "
        f"{args.params}: precision {params.train.precision} -> "
        f"{resolve_precision(params.train.precision, torch.device('cpu')).precision}, "
        f"batch {params.train.batch_size}, "
        f"{params.runtime.memory_format}; fp32 eager = fp32, batch 32, channels_last, with the "
        "1x1 layer of 2026-12-02 (stride on the NCHW view) and with today's"
    )
    rates = alternate(
        steps,
        args.rounds,
        lambda r: (
            f"default {r['default'][-1]:.0f} img/s, fp32 eager {r['issue day'][-1]:.0f} "
            f"img/s (today's layer: {r['fp32'][-1]:.0f})"
        ),
    )
    median = {name: statistics.median(values) for name, values in rates.items()}
    same_layer = median["default"] / median["fp32"]
    print(f"default vs fp32 eager on today's 1x1 layer: {same_layer:.2f}x")
    print(f"default vs fp32 eager: {median['default'] / median['issue day']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breakdown", action="store_true", help="where an epoch's time goes")
    parser.add_argument(
        "--default-vs-fp32", action="store_true", help="params.yaml's step against fp32 eager"
    )
    parser.add_argument(
        "--auto", action="store_true", help="params.yaml's step against explicit fp32 and bf16"
    )
    parser.add_argument("--params", default=os.environ.get("FERX_PARAMS", "params.yaml"))
    parser.add_argument("--steps", type=int, default=300, help="--breakdown: steps timed")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="STEPS", help="--breakdown: torch.profiler too"
    )
    parser.add_argument("--rounds", type=int, default=5, help="--default-vs-fp32: rounds")
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
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=["fp32", "bf16"],
        help="precisions to time (default: fp32; with --breakdown, fp32 and bf16)",
    )
    parser.add_argument(
        "--widths",
        nargs="+",
        type=lambda text: tuple(int(w) for w in text.split(",")),
        default=[None],
        help="mini-Xception module widths to time, e.g. 16,32,64,128 32,64,128,256",
    )
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.breakdown:
        args.precision = args.precision or ["fp32", "bf16"]
        return print_breakdown(args)
    args.precision = args.precision or ["fp32"]
    if args.default_vs_fp32:
        return print_default_vs_fp32(args)
    if args.auto:
        return print_auto(args)
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
