"""PyTorch against ONNX Runtime on this CPU, same threads, for each network.

    python bench/bench_onnx.py [--arch mini_xception baseline_cnn resnet18] [--batch 128]

Exports a freshly initialised network (speed does not depend on the weights) with the export
stage's code, then times both runtimes the way the cost stage does: median latency of one
face (batch 1) and images/s at a large batch. Prints one line per network and runtime.

    python bench/bench_onnx.py --graphs [--rounds 5] [--widths 32,64,128,256]

The deploy graph against the export of before (issue 43): the same mini-Xception weights
exported in the export stage's deploy form (ferx/deploy/graph.py: 1x1 layers as convolutions,
BatchNorm folded) and in the training form (Pointwise as Reshape + MatMul, BatchNorm nodes),
timed in ONNX Runtime alternately round by round; prints each graph's node counts, faces/s at
batch 1 and at --batch, and the ratio, as its last line `deploy graph vs training form at
batch 1: N.NNx`.

    python bench/bench_onnx.py --attentions none eca [--rounds 5] [--widths 32,64,128,256]

The deploy graph of the mini-Xception with each channel attention (train.model.attention), the
same way: what an attention costs a deployed model, which its FLOPs do not show (ECA adds
under 0.1 % of the multiply-adds and a pass over each module's feature map).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock

import torch

from ferx.analysis.cost import latency_ms, onnxruntime_speed, throughput
from ferx.cpu import describe_cpu
from ferx.deploy.export import export_onnx
from ferx.labels import ARCHITECTURES
from ferx.models import ModelConfig, build_model
from ferx.models.layers import ATTENTION


def training_form(model: torch.nn.Module) -> torch.nn.Module:
    """What export_onnx exported before the deploy graph: the network as it trains."""
    return copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)


def node_counts(path: Path) -> Counter:
    import onnx

    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def compare_graphs(args, threads: int) -> None:
    widths = tuple(int(w) for w in args.widths.split(","))
    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=widths)).eval()
    print(f"mini_xception widths {list(widths)}, ONNX Runtime, {threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"deploy": Path(tmp) / "deploy.onnx", "training": Path(tmp) / "training.onnx"}
        export_onnx(model, paths["deploy"])
        with mock.patch("ferx.deploy.graph.deploy_form", training_form):
            export_onnx(model, paths["training"])
        median = time_alternately(paths, args, threads)
    ratio = median["deploy"][0] / median["training"][0]
    print(
        f"deploy graph vs training form at batch {args.batch}: "
        f"{median['deploy'][1] / median['training'][1]:.2f}x"
    )
    print(f"deploy graph vs training form at batch 1: {ratio:.2f}x")


def time_alternately(paths: dict[str, Path], args, threads: int) -> dict[str, tuple[float, float]]:
    """Each graph's node counts, then faces/s at batch 1 and at --batch in ONNX Runtime, the
    graphs timed in turn round by round (the order reversed every other round), so that the
    machine's drift hits all alike; returns the medians, printed too."""
    for name, path in paths.items():
        counts = node_counts(path)
        top = ", ".join(f"{op} {n}" for op, n in counts.most_common(6))
        print(f"{name:<9} graph: {sum(counts.values())} nodes ({top})")
    one: dict[str, list[float]] = {name: [] for name in paths}
    many: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(args.rounds):
        order = list(paths) if round_ % 2 == 0 else list(paths)[::-1]
        for name in order:
            speed = onnxruntime_speed(paths[name], args.batch, threads, seconds=args.seconds)
            one[name].append(1000 / speed["latency_ms_batch1"])
            many[name].append(speed["throughput_img_s"])
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{n} {one[n][-1]:.0f} faces/s (batch 1)" for n in paths),
            flush=True,
        )
    median = {n: (statistics.median(one[n]), statistics.median(many[n])) for n in paths}
    for name, (single, batched) in median.items():
        print(f"{name:<9} {single:8.0f} faces/s at batch 1, {batched:8.0f} at batch {args.batch}")
    return median


def compare_attentions(args, threads: int) -> None:
    widths = tuple(int(w) for w in args.widths.split(","))
    print(f"mini_xception widths {list(widths)}, deploy graphs, ONNX Runtime, {threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for attention in args.attentions:
            torch.manual_seed(0)
            model = build_model(ModelConfig(widths=widths, attention=attention)).eval()
            paths[attention] = Path(tmp) / f"{attention}.onnx"
            export_onnx(model, paths[attention])
        median = time_alternately(paths, args, threads)
    first = args.attentions[0]
    for name in args.attentions[1:]:
        print(
            f"{name} vs {first}: {median[name][0] / median[first][0]:.2f}x at batch 1, "
            f"{median[name][1] / median[first][1]:.2f}x at batch {args.batch}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=3.0)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--graphs", action="store_true", help="deploy graph vs training form")
    parser.add_argument("--rounds", type=int, default=5, help="--graphs, --attentions: rounds")
    modes.add_argument(
        "--attentions",
        nargs="+",
        choices=["none", *ATTENTION],  # train.model.attention's values
        help="deploy graphs with each attention, the first the reference",
    )
    parser.add_argument(
        "--widths", default="32,64,128,256", help="--graphs, --attentions: module widths"
    )
    args = parser.parse_args()
    if args.attentions and len(set(args.attentions)) < len(args.attentions):
        parser.error("--attentions: each attention once")
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.graphs:
        return compare_graphs(args, threads)
    if args.attentions:
        return compare_attentions(args, threads)
    print(f"torch {torch.__version__}, {threads} threads, throughput at batch {args.batch}")
    for arch in args.arch:
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch=arch)).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{arch}.onnx"
            export_onnx(model, path)
            ort = onnxruntime_speed(path, args.batch, threads, seconds=args.seconds)
        runs = 200 if arch == "mini_xception" else 30
        torch_latency = latency_ms(model, runs=runs, warmup=5)
        torch_rate = throughput(model, args.batch, args.seconds)
        print(
            f"{arch:<14} PyTorch      {torch_latency:8.2f} ms/face (batch 1) "
            f"{torch_rate:8.0f} img/s",
            flush=True,
        )
        print(
            f"{arch:<14} ONNX Runtime {ort['latency_ms_batch1']:8.2f} ms/face (batch 1) "
            f"{ort['throughput_img_s']:8.0f} img/s  ({ort['file_bytes'] / 1e6:.1f} MB file)",
            flush=True,
        )


if __name__ == "__main__":
    main()
