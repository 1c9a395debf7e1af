"""The training loop shared by the train and improve stages.

Plain and explicit, in the spirit of torchvision's references/classification: one epoch of
augmented mini-batches, then PublicTest and PrivateTest evaluation, a history row, DVCLive
logging, and an atomic per-epoch checkpoint that a killed run resumes from. The model kept is
the best on PublicTest only; PrivateTest is reported, never used to choose.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ferx.labels import EVAL_SPLITS
from ferx.metrics import summary_metrics
from ferx.models.checkpoint import save_state
from ferx.models.inference import memory_format, predict_logits
from ferx.params import RuntimeParams, TrainParams
from ferx.training.augment import Mix, augment_batch, mix_batch
from ferx.training.device import choose_device, deterministic_cuda
from ferx.training.distill import Distill, soft_loss, teacher_logits
from ferx.training.optim import make_ema, make_optimizer, make_scheduler
from ferx.training.precision import (
    AUTOCAST_DTYPES,
    check_precision,
    resolve_precision,
)
from ferx.training.progress import live_log, log_epoch, open_live
from ferx.training.resume import fingerprint, resume_or_start, state_digest
from ferx.training.run_spec import FitResult, RunSpec, Split


def fit(
    model: torch.nn.Module,
    splits: dict[str, Split],
    params: TrainParams,
    spec: RunSpec,
    runtime: RuntimeParams | None = None,
) -> FitResult:
    """Train `model` on splits['train']; select on PublicTest; log and checkpoint each epoch.
    `runtime` says how (device, layout, inference batch), never what: it is not fingerprinted."""
    runtime = runtime or RuntimeParams()
    device = choose_device(runtime.device)
    # auto becomes what runs here (bf16 or fp32): the resume fingerprint and the autocast see
    # the resolved value, so a checkpoint of one precision never resumes in the other
    params = params.model_copy(
        update={"precision": resolve_precision(params.precision, device).precision}
    )
    check_precision(params.precision, device)
    with deterministic_cuda() if device.type == "cuda" else nullcontext():
        return _fit_on(device, model, splits, params, spec, runtime)


def _fit_on(device, model, splits, params, spec, runtime) -> FitResult:
    model.to(device, memory_format=memory_format(runtime.memory_format))
    freeze_all_but(model, spec.trainable)
    train = splits["train"]
    steps = math.ceil(len(train) / params.batch_size)
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, params, steps)
    weights = spec.class_weights.to(device) if spec.class_weights is not None else None
    offset = spec.logit_offset.to(device) if spec.logit_offset is not None else None
    draw = epoch_order(train.y, spec.sampling)
    if spec.distill is not None:  # the caller's teacher stays on the device, frozen, in eval
        spec.distill.teacher.to(device, memory_format=memory_format(runtime.memory_format))
        spec.distill.teacher.requires_grad_(False)
    if spec.init_state_dict is not None:
        model.load_state_dict(spec.init_state_dict)
    extra = spec.fingerprint_extra
    if spec.distill is not None:  # a distilled run's checkpoint is another run's to a plain one
        d = spec.distill
        teacher = {"teacher": state_digest(d.teacher.state_dict())}
        settings = {"temperature": float(d.temperature), "soft_weight": float(d.soft_weight)}
        extra = {**extra, "distill": {**teacher, **settings}}
    key = fingerprint(params, splits, model.state_dict(), extra)
    state = resume_or_start(spec, key, model, optimizer, scheduler)
    state.setdefault("sittings", [])
    if spec.sitting is not None and state["epoch"] < params.epochs:
        state["sittings"].append({**spec.sitting, "from_epoch": state["epoch"] + 1})
    # fp16's narrow range needs the loss scaled up and the gradients back down (bf16 does not)
    scaler = torch.amp.GradScaler(device.type, enabled=params.precision == "fp16")
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    ema = make_ema(model, params.ema, params.ema_warmup)
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    # what each epoch evaluates and may keep: the weight average when EMA is on
    scored = model if ema is None else ema.module
    if state["epoch"] == 0 and spec.init_state_dict is not None:
        # Fine-tuning: the starting weights are "epoch 0", scored like every epoch, and kept
        # unless an epoch beats them on the PublicTest selection metric.
        state["start"] = _evaluate(model, splits, runtime, device)
        state["best_score"] = state["start"][f"public/{spec.select_metric}"]
        print(
            f"{spec.name}: starting weights (epoch 0): public {spec.select_metric} "
            f"{state['best_score']:.4f}; kept unless an epoch beats it"
        )
    live = open_live(spec, state["history"])
    start = time.perf_counter() - state["seconds"]

    for epoch in range(state["epoch"] + 1, params.epochs + 1):
        if params.patience and state["stale"] >= params.patience:
            print(f"{spec.name}: early stop, no PublicTest gain in {params.patience} epochs")
            break
        epoch_start = time.perf_counter()
        train_mode(model)
        row = {"epoch": epoch}
        row |= _train_one_epoch(
            model,
            train,
            params,
            optimizer,
            scheduler,
            weights,
            epoch,
            device,
            spec.name,
            runtime,
            ema,
            scaler,
            offset,
            draw,
            spec.distill,
        )
        row |= _evaluate(scored, splits, runtime, device)
        row["seconds"] = time.perf_counter() - epoch_start
        score = row[f"public/{spec.select_metric}"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        improved = score > state["best_score"]
        if improved:
            state["best_score"], state["best_epoch"] = score, epoch
            state["best_state"] = {
                k: v.detach().cpu().clone() for k, v in scored.state_dict().items()
            }
        state["stale"] = 0 if improved else state["stale"] + 1
        state["history"].append(row)
        log_epoch(spec.name, row, params.epochs, improved, spec.select_metric)
        if live is not None:
            live_log(live, row)
        state.update(
            epoch=epoch,
            seconds=time.perf_counter() - start,
            model={k: v.detach().cpu() for k, v in model.state_dict().items()},
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            **({} if ema is None else {"ema": ema.state_dict()}),
            **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
        )
        save_state(spec.state_path, state)
        if spec.on_epoch_end is not None:
            spec.on_epoch_end(state["history"])

    state["finished"] = True
    save_state(spec.state_path, state)
    if live is not None:
        live.end()
    return FitResult(
        state["best_state"],
        state["best_epoch"],
        state["history"],
        time.perf_counter() - start,
        state.get("start"),
        state["sittings"],
    )


def shuffled(n: int, generator: torch.Generator) -> torch.Tensor:
    """Every face once, in a random order."""
    return torch.randperm(n, generator=generator)


def epoch_order(labels: torch.Tensor, sampling: str):
    """The function that draws an epoch's faces (n, generator) -> indices, for
    RunSpec.sampling: "shuffle", or "class_balanced": n draws with replacement, each face
    weighted 1 / its class's count, so each class is drawn equally often on average."""
    if sampling == "shuffle":
        return shuffled
    if sampling != "class_balanced":
        raise ValueError(f"sampling must be shuffle or class_balanced, got {sampling!r}")
    counts = torch.bincount(labels)
    per_face = (1.0 / counts.double())[labels]

    def balanced(n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.multinomial(per_face, n, replacement=True, generator=generator)

    return balanced


def _evaluate(model, splits, runtime, device) -> dict[str, float]:
    """PublicTest and PrivateTest summary metrics, keyed 'public/accuracy' and so on."""
    row = {}
    for short, split in EVAL_SPLITS.items():
        logits = predict_logits(
            model, splits[split].x, runtime.eval_batch_size, device, runtime.memory_format
        )
        for metric, value in summary_metrics(logits, splits[split].y).items():
            row[f"{short}/{metric}"] = value
    return row


def freeze_all_but(model: torch.nn.Module, trainable: str) -> None:
    """Let everything learn ("all"), the network's top layers and head ("top"), only the head
    ("head"), or only its biases ("bias")."""
    learning = {
        "all": lambda: model.parameters(),
        "top": lambda: [*model.top.parameters(), *model.head.parameters()],
        "head": lambda: model.head.parameters(),
        "bias": lambda: [model.head.bias],
    }
    if trainable not in learning:
        raise ValueError(f"trainable must be one of {', '.join(learning)}, got {trainable!r}")
    learns = {id(parameter) for parameter in learning[trainable]()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in learns)


def train_mode(model: torch.nn.Module) -> None:
    """model.train(), except that frozen BatchNorm layers keep normalising with (and keeping)
    their running statistics: in train mode they would still drift towards each batch."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()


def train_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: TrainParams,
    optimizer: torch.optim.Optimizer,
    weights: torch.Tensor | None = None,
    scaler: torch.amp.GradScaler | None = None,
    offset: torch.Tensor | None = None,
    mix: Mix | None = None,
    soft: tuple[torch.Tensor, Distill] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch already augmented and on the device: the forward pass
    under autocast in `params.precision` (resolved: fp32, bf16 or fp16), the label-smoothed
    (class-weighted) loss in float32, backward, the optimizer step (through the fp16 gradient
    scaler when it is on). `offset` (per class) is added to the logits in the loss only: a
    logit-adjusted loss. `mix` (a mixup or CutMix batch) mixes the loss of each face's two
    labels by its weight. `soft` (the teacher's logits for this batch, and the Distill) makes
    the loss soft_weight x the distillation loss + (1 - soft_weight) x that one. Returns the
    loss and the float32 logits. The loop and the benchmarks (bench/bench_train.py,
    bench/gpu_check.py) run this very step."""
    dtype = AUTOCAST_DTYPES.get(params.precision)
    with torch.autocast(x.device.type, dtype or torch.bfloat16, enabled=dtype is not None):
        logits = model(x)
    logits = logits.float()  # the loss and the bookkeeping in float32 either way
    trained = logits if offset is None else logits + offset
    loss = F.cross_entropy(trained, y, weight=weights, label_smoothing=params.label_smoothing)
    if mix is not None:
        partner_y = y[mix.partner.to(y.device)]
        loss = mix.weight * loss + (1 - mix.weight) * F.cross_entropy(
            trained, partner_y, weight=weights, label_smoothing=params.label_smoothing
        )
    if soft is not None:
        targets, distill = soft
        loss = (
            distill.soft_weight * soft_loss(logits, targets, distill.temperature)
            + (1 - distill.soft_weight) * loss
        )
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skips a step whose gradients overflowed
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss, logits


def _train_one_epoch(
    model,
    train,
    params,
    optimizer,
    scheduler,
    weights,
    epoch,
    device,
    name,
    runtime,
    ema=None,
    scaler=None,
    offset=None,
    draw=None,
    distill=None,
):
    """One epoch: the training set shuffled (or drawn class-balanced: `draw`) and augmented,
    as many faces as it holds; with `distill`, the teacher's logits on each batch as it is
    trained on join the loss. Returns the epoch's mean learning
    rate, its objective (label-smoothed, class-weighted in improve, label-mixed under mixup or
    CutMix: what is minimised), and plain cross-entropy and accuracy on the same batches against
    each face's own label (under mixing, the label of the face its pixels mostly came from
    only when its weight is over one half: these two then read lower than without mixing)."""
    # One generator per epoch, seeded from (seed, epoch): a resumed run draws the same
    # shuffles and augmentations as an uninterrupted one.
    generator = torch.Generator().manual_seed(params.seed * 1_000_003 + epoch)
    order = (draw or shuffled)(len(train), generator)
    step_scheduler = not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    fmt = memory_format(runtime.memory_format)
    objective, plain, correct, seen, lr_sum, steps = 0.0, 0.0, 0, 0, 0.0, 0
    bar = tqdm(
        range(0, len(train), params.batch_size),
        desc=f"{name} epoch {epoch}/{params.epochs}",
        leave=False,
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
        disable=None,
    )
    for begin in bar:
        index = order[begin : begin + params.batch_size]
        x = train.x[index].to(torch.float32)
        x = augment_batch(x, params.augment, generator)
        x, mix = mix_batch(x, params.augment, generator)
        x = x.to(device).contiguous(memory_format=fmt)
        y = train.y[index].to(device)
        lr_sum += optimizer.param_groups[0]["lr"]  # the rate this step uses
        steps += 1
        soft = None
        if distill is not None:
            dtype = AUTOCAST_DTYPES.get(params.precision)
            soft = (teacher_logits(distill.teacher, x, dtype), distill)
        loss, logits = train_step(
            model, x, y, params, optimizer, weights, scaler, offset, mix, soft
        )
        if ema is not None:
            ema.update_parameters(model)
        if step_scheduler:
            scheduler.step()
        objective += loss.item() * len(y)
        plain += F.cross_entropy(logits.detach(), y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{objective / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
    bar.close()
    return {
        "lr": lr_sum / steps,
        "train/objective": objective / seen,
        "train/loss": plain / seen,
        "train/accuracy": correct / seen,
    }
