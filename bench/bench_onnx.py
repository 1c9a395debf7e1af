"""PyTorch against ONNX Runtime on this CPU, same threads, for each network.

    python bench/bench_onnx.py [--arch mini_xception baseline_cnn resnet18] [--batch 128]

Exports a freshly initialised network (speed does not depend on the weights) with the export
stage's code, then times both runtimes the way the cost stage does: median latency of one
face (batch 1) and images/s at a large batch. Prints one line per network and runtime.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from ferx.analysis.cost import latency_ms, onnxruntime_speed, throughput
from ferx.cpu import describe_cpu
from ferx.deploy.export import export_onnx
from ferx.labels import ARCHITECTURES
from ferx.models import ModelConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
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
