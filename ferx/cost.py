"""What a model costs: FLOPs (fvcore), parameters, file size, CPU latency and throughput."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis

from ferx.labels import IMAGE_SIDE
from ferx.model import count_parameters

FLOP_NOTE = "fvcore counts one multiply-add as one flop"


def count_flops(model: torch.nn.Module, side: int = IMAGE_SIDE) -> int:
    """fvcore's flop count for one side x side grayscale image (1 multiply-add = 1 flop)."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    analysis = FlopCountAnalysis(model, torch.zeros(1, 1, side, side))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    return int(analysis.total())


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, runs: int = 200, warmup: int = 20) -> float:
    """Median wall time of one single-image forward pass, after warm-up."""
    model.eval()
    x = torch.rand(1, 1, IMAGE_SIDE, IMAGE_SIDE) * 255
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


@torch.inference_mode()
def throughput(model: torch.nn.Module, batch: int = 128, seconds: float = 3.0) -> float:
    """Images per second at a large batch (channels_last, as evaluation runs)."""
    model.eval().to(memory_format=torch.channels_last)
    x = (torch.rand(batch, 1, IMAGE_SIDE, IMAGE_SIDE) * 255).contiguous(
        memory_format=torch.channels_last
    )
    model(x)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model(x)
        done += batch
    return done / (time.perf_counter() - start)


def efficiency(accuracy: float, flops: int) -> float:
    """The course competition's figure: accuracy in percent divided by GFLOPs."""
    return 100.0 * accuracy / (flops / 1e9)


def model_cost(
    model: torch.nn.Module, model_path: Path, private_accuracy: float, batch: int
) -> dict[str, Any]:
    flops = count_flops(model)
    return {
        "gflops": flops / 1e9,
        "flops": flops,
        "flops_note": FLOP_NOTE,
        "parameters": count_parameters(model),
        "parameters_with_bn_stats": count_parameters(model, trainable_only=False),
        "file_bytes": model_path.stat().st_size,
        "latency_ms_batch1": round(latency_ms(model), 3),
        "throughput_img_s": round(throughput(model, batch)),
        "throughput_batch": batch,
        "threads": torch.get_num_threads(),
        "private_accuracy": private_accuracy,
        "efficiency": efficiency(private_accuracy, flops),
    }


def plot_accuracy_vs_gflops(
    costs: dict[str, dict[str, Any]], path: str | Path, source: str
) -> None:
    from ferx.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for name, cost in costs.items():
        ax.scatter(cost["gflops"], 100 * cost["private_accuracy"], s=60, label=name)
        ax.annotate(
            f"{name}\neff. {cost['efficiency']:.0f}",
            (cost["gflops"], 100 * cost["private_accuracy"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set(
        xlabel="GFLOPs per 48x48 image (fvcore: 1 multiply-add = 1 flop)",
        ylabel="PrivateTest accuracy (%)",
        title=f"Accuracy vs cost ({source} data)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
