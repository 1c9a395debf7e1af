"""What a model costs: FLOPs (fvcore), parameters, file size, CPU latency and throughput, in
PyTorch and, for the exported ONNX file, in ONNX Runtime on the same threads."""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

with warnings.catch_warnings():  # fvcore's import scripts a helper with torch.jit, deprecated
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis

from ferx.labels import IMAGE_SIDE
from ferx.models import count_parameters
from ferx.models.inference import model_kept_as_is

FLOP_NOTE = "fvcore counts one multiply-add as one flop"


def count_flops(
    model: torch.nn.Module, side: int = IMAGE_SIDE, with_unsupported: bool = False
) -> int | tuple[int, dict[str, int]]:
    """fvcore's flop count for one side x side grayscale image (1 multiply-add = 1 flop);
    with_unsupported: also the operators fvcore skipped (name -> count), which the cost
    report lists instead of a wall of warnings (elementwise ops, pooling, normalisation)."""
    with model_kept_as_is(model):
        model.eval().to(memory_format=torch.contiguous_format)
        analysis = FlopCountAnalysis(model, torch.zeros(1, 1, side, side))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        total = int(analysis.total())
        unsupported = dict(sorted(analysis.unsupported_ops().items()))
    if not with_unsupported:
        return total
    return total, unsupported


def _median_ms(call, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _images_per_second(call, batch: int, seconds: float) -> float:
    call()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        done += batch
    return done / (time.perf_counter() - start)


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, runs: int = 200, warmup: int = 20) -> float:
    """Median wall time of one single-image forward pass, after warm-up."""
    x = torch.rand(1, 1, IMAGE_SIDE, IMAGE_SIDE) * 255
    with model_kept_as_is(model):
        model.eval()
        return _median_ms(lambda: model(x), runs, warmup)


@torch.inference_mode()
def throughput(model: torch.nn.Module, batch: int = 128, seconds: float = 3.0) -> float:
    """Images per second at a large batch (channels_last, as evaluation runs)."""
    x = (torch.rand(batch, 1, IMAGE_SIDE, IMAGE_SIDE) * 255).contiguous(
        memory_format=torch.channels_last
    )
    with model_kept_as_is(model):
        model.eval().to(memory_format=torch.channels_last)
        return _images_per_second(lambda: model(x), batch, seconds)


def onnxruntime_speed(
    onnx_path: Path, batch: int = 128, threads: int = 1, runs: int = 200, seconds: float = 3.0
) -> dict[str, Any]:
    """Latency (batch 1) and throughput (`batch`) of the ONNX file in ONNX Runtime."""
    from ferx.onnx_model import OnnxModel

    onnx_model = OnnxModel(onnx_path, threads=threads)
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, 1, IMAGE_SIDE, IMAGE_SIDE)).astype(np.float32)
    many = rng.uniform(0, 255, (batch, 1, IMAGE_SIDE, IMAGE_SIDE)).astype(np.float32)
    return {
        "file_bytes": onnx_path.stat().st_size,
        "latency_ms_batch1": round(_median_ms(lambda: onnx_model.logits(one), runs, 20), 3),
        "throughput_img_s": round(
            _images_per_second(lambda: onnx_model.logits(many, batch), batch, seconds)
        ),
        "throughput_batch": batch,
        "threads": threads,
    }


def efficiency(accuracy: float, flops: int) -> float:
    """The course competition's figure: accuracy in percent divided by GFLOPs."""
    return 100.0 * accuracy / (flops / 1e9)


def model_cost(
    model: torch.nn.Module,
    model_path: Path,
    private_accuracy: float,
    batch: int,
    tta: dict[str, Any] | None = None,
    onnx_path: Path | None = None,
) -> dict[str, Any]:
    """Cost and efficiency of one model; `tta` ({"views", "n_views", "accuracy"}: the
    evaluate stage's TTA result on PrivateTest) adds the same for test-time augmentation,
    which classifies n_views images per face and so costs n_views times the GFLOPs;
    `onnx_path` adds the exported file's speed in ONNX Runtime, on torch's thread count."""
    flops, unsupported = count_flops(model, with_unsupported=True)
    extra: dict[str, Any] = {}
    if onnx_path is not None:
        extra["onnxruntime"] = onnxruntime_speed(onnx_path, batch, torch.get_num_threads())
    if tta is not None:
        extra["tta"] = {
            "views": tta["views"],
            "n_views": tta["n_views"],
            "gflops": tta["n_views"] * flops / 1e9,
            "private_accuracy": tta["accuracy"],
            "efficiency": efficiency(tta["accuracy"], tta["n_views"] * flops),
        }
    return {
        "arch": getattr(getattr(model, "config", None), "arch", type(model).__name__),
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
        # operators fvcore cannot count (their FLOPs are missing from the total), by count
        "fvcore_unsupported_ops": unsupported,
        **extra,
    }


def plot_accuracy_vs_gflops(
    costs: dict[str, dict[str, Any]], path: str | Path, source: str
) -> None:
    """PrivateTest accuracy against GFLOPs per face (log scale): one filled point per model,
    and where TTA is on a hollow one at n_views times the GFLOPs, joined to it."""
    from ferx.analysis.cost_figure import CostPoint, plot_cost_points
    from ferx.plots import plt, save_figure

    # models at the same point (improve kept the baseline) share one dot and one label
    groups: dict[tuple, list[str]] = {}
    for name, cost in costs.items():
        tta = cost.get("tta", {})
        key = (
            cost["gflops"],
            cost["private_accuracy"],
            tta.get("gflops"),
            tta.get("private_accuracy"),
        )
        groups.setdefault(key, []).append(name)
    points = []
    for names in groups.values():
        name, cost = " = ".join(names), costs[names[0]]
        tta = cost.get("tta")
        points.append(
            CostPoint(
                label=f"{name}\neff. {cost['efficiency']:.0f}",
                gflops=cost["gflops"],
                accuracy=100 * cost["private_accuracy"],
                legend=f"{name} ({cost.get('arch', 'model')})",
                tta_gflops=tta["gflops"] if tta else None,
                tta_accuracy=100 * tta["private_accuracy"] if tta else None,
                tta_label=(
                    f"{name} + {tta['views']} TTA ({tta['n_views']} views)\n"
                    f"eff. {tta['efficiency']:.0f}"
                    if tta
                    else None
                ),
            )
        )
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    plot_cost_points(ax, points)
    ax.margins(x=0.3, y=0.3)
    ax.set(
        xlabel="GFLOPs per 48x48 face (fvcore: 1 multiply-add = 1 flop; log scale)",
        ylabel="PrivateTest accuracy (%)",
        title=f"Accuracy vs cost ({source} data); hollow: with TTA",
    )
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
