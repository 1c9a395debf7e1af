"""One training run from params to files, shared by the train and improve stages."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from ferx.atomic import write_json
from ferx.cpu import cpu_features, cpu_model
from ferx.data.splits import data_source
from ferx.labels import EVAL_SPLITS
from ferx.models import ModelConfig, build_model
from ferx.models.checkpoint import save_model
from ferx.params import ModelParams, Params, RuntimeParams, TrainParams
from ferx.plots import plot_curves
from ferx.training.device import CUBLAS_WORKSPACE, choose_device
from ferx.training.logit_adjust import LogitAdjust, adjust_logits
from ferx.training.loop import fit
from ferx.training.precision import (
    Resolved,
    check_precision,
    resolve_precision,
    slow_bf16_warning,
)
from ferx.training.progress import history_table
from ferx.training.run_spec import RunSpec, Split, load_splits

# Environment variables that move the bits: the instruction set oneDNN / ATen / MKL may use,
# and the OpenMP thread count torch starts with (BENCHMARKS.md: "What changes the bits")
BITS_ENVIRONMENT = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",  # oneDNN's older name for the same cap
    "MKL_CBWR",
    "OMP_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)


def bits_record(runtime: RuntimeParams, precision: Resolved) -> dict[str, Any]:
    """What decides the exact bits of a run's numbers besides params and seed. oneDNN and MKL
    promise bitwise-equal results only for one instruction set, thread count and build, so
    two runs are comparable bit for bit only when all of this matches. `precision` is what
    ran (train.precision resolved: never auto) and why."""
    device = choose_device(runtime.device)
    environment = {name: os.environ[name] for name in BITS_ENVIRONMENT if name in os.environ}
    if device.type == "cuda":  # what the run had: fit sets it while it trains
        environment.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    return {
        "torch": str(torch.__version__),  # a plain str: the checkpoint loads weights-only
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "precision": precision.precision,
        "precision_reason": precision.reason,
        "memory_format": runtime.memory_format,
        "eval_batch_size": runtime.eval_batch_size,
        "environment": environment,
    }


def with_sittings(bits: dict[str, Any], sittings: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's record of what decided its bits: this sitting's, with every sitting's record
    (a resumed training's earlier ones too) and `mixed` when they differ (their epochs then
    came from unlike settings)."""
    sittings = sittings or [{**bits, "from_epoch": 1}]
    kinds = {json.dumps({k: v for k, v in s.items() if k != "from_epoch"}, sort_keys=True)
             for s in sittings}  # fmt: skip
    return {**bits, "sittings": sittings, "mixed": len(kinds) > 1}


def model_config(params: ModelParams, train: Split | None = None) -> ModelConfig:
    """The network params.yaml asks for; `dataset` normalisation takes the training faces'
    pixel mean and std (without them, as for random benchmark faces: the defaults)."""
    stats = {}
    if train is not None:
        pixels = train.x.float()
        stats = {"mean": float(pixels.mean()), "std": float(pixels.std())}
    return ModelConfig(
        arch=params.arch,
        widths=tuple(params.widths),
        stem_width=params.stem_width,
        normalize=params.normalize,
        attention=params.attention,
        **stats,
    )


def train_and_save(
    params: Params,
    *,
    name: str,
    model_path: Path,
    metrics_path: Path,
    state_path: Path,
    live_dir: Path | None,
    plots_dir: Path,
    train_params: TrainParams | None = None,
    select_metric: str | None = None,
    class_weights: torch.Tensor | None = None,
    init_model: torch.nn.Module | None = None,
    trainable: str = "all",
    extra_metrics: dict[str, Any] | None = None,
    logit_offset: torch.Tensor | None = None,
    sampling: str = "shuffle",
    adjust: LogitAdjust | None = None,
) -> dict[str, Any]:
    """Fit, keep the best-on-PublicTest weights, write model, metrics JSON and PNG curves.
    improve's knobs: `logit_offset` (a logit-adjusted loss), `sampling` (RunSpec) and
    `adjust` (post-hoc logit adjustment of the kept weights, tau chosen on PublicTest)."""
    train_params = train_params or params.train
    # a device or precision this machine lacks is one line before any data is read
    device = choose_device(params.runtime.device)
    precision = resolve_precision(train_params.precision, device)
    check_precision(precision.precision, device)
    if warning := slow_bf16_warning(precision.precision, device):
        print(warning, file=sys.stderr, flush=True)
    asked = "" if train_params.precision == precision.precision else "auto -> "
    print(f"{name}: precision {asked}{precision.precision} ({precision.reason})", flush=True)
    train_params = train_params.model_copy(update={"precision": precision.precision})
    if params.runtime.threads:
        torch.set_num_threads(params.runtime.threads)
    bits = bits_record(params.runtime, precision)  # after the threads are set
    torch.manual_seed(train_params.seed)
    splits = load_splits(params.prepare.out_dir)
    if init_model is not None:
        model = build_model(init_model.config)
        init_state = init_model.state_dict()
    else:
        model = build_model(model_config(train_params.model, splits["train"]))
        init_state = None
    select_metric = select_metric or train_params.select_metric
    spec = RunSpec(
        name=name,
        state_path=state_path,
        live_dir=live_dir,
        select_metric=select_metric,
        class_weights=class_weights,
        logit_offset=logit_offset,
        sampling=sampling,
        init_state_dict=init_state,
        trainable=trainable,
        sitting=bits,
        fingerprint_extra={  # the initial weights are hashed by the fingerprint itself
            "trainable": trainable,
            "select": select_metric,
            "weights": None if class_weights is None else class_weights.tolist(),
            # only when set: the checkpoint of a run without them keeps its fingerprint
            **({"offset": logit_offset.tolist()} if logit_offset is not None else {}),
            **({"sampling": sampling} if sampling != "shuffle" else {}),
        },
    )
    result = fit(model, splits, train_params, spec, params.runtime)
    model.load_state_dict(result.best_state_dict)
    adjustment = None
    if adjust is not None:
        adjustment = adjust_logits(model, splits, adjust, params.runtime, name)
    source = data_source(params.prepare.out_dir)
    save_model(model_path, model, source=source, best_epoch=result.best_epoch, run=name)

    rows = [result.start, *result.history] if result.start else result.history
    best = next(row for row in rows if row.get("epoch", 0) == result.best_epoch)
    metrics = {
        "source": source,
        "model": model_path.stem,
        "select_metric": f"public {select_metric}",
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        # fine-tuning: true when no epoch beat the starting weights, which are then kept
        **({"kept_start": result.best_epoch == 0} if result.start else {}),
        **{
            short: {
                m: best[f"{short}/{m}"]
                for m in ("loss", "accuracy", "macro_f1", "balanced_accuracy")
            }
            for short in EVAL_SPLITS
        },
        "seconds": round(result.seconds, 1),
        "seconds_per_epoch": round(result.seconds / max(1, len(result.history)), 2),
        **(extra_metrics or {}),
        "reproducibility": with_sittings(bits, result.sittings),
    }
    if adjustment is not None:  # the model as saved: its biases carry the adjustment
        for short in EVAL_SPLITS:
            metrics[short] = adjustment.pop(short)
        metrics["logit_adjustment"] = adjustment
    write_json(metrics_path, metrics)
    plot_curves(
        result.history,
        plots_dir,
        title=f"{model_path.stem} ({source} data)",
        best_epoch=result.best_epoch,
    )
    print(history_table(result.history))
    kept = "the starting weights" if result.best_epoch == 0 else f"epoch {result.best_epoch}"
    print(
        f"{name}: kept {kept} (best public {select_metric}); "
        f"public accuracy {metrics['public']['accuracy']:.4f}, "
        f"private accuracy {metrics['private']['accuracy']:.4f}; {result.seconds:.0f} s"
    )
    return metrics
