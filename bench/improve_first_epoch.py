"""Why does improve's first fine-tuned epoch lose PublicTest accuracy? One epoch, four ways.

    python bench/improve_first_epoch.py --model models/baseline.pt --prepared data/prepared
                                        [--lr 3e-5] [--seed 0]

From a trained baseline, each variant runs one epoch of the training loop's own step
(augment_batch, train_step; params.yaml's train section, fp32) on the training split, then
scores PublicTest and counts the faces predicted as each class. It trains in the default memory
layout where the loop uses channels_last: the same arithmetic, other bits.
  bn_only       forward passes in train mode, no step: only BatchNorm's running statistics move
  plain         a fresh Adam at a constant `--lr`, the unweighted loss
  weights_999   the same, improve's class weights (effective number, beta 0.999)
  weights_9999  the same, beta 0.9999 (the studies' drw and warm_drw)
If bn_only already loses, the cause is BatchNorm; if plain loses as much as the weighted ones,
it is the optimiser restarting, not the weights; if only the weighted ones lose, and the rare
classes' counts swell, the weights shift the decisions. Needs a real run's model and splits
(issue 35's diagnostics); prints a table.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

from ferx.cpu import describe_cpu
from ferx.data.splits import load_split
from ferx.labels import CLASS_NAMES, NUM_CLASSES
from ferx.metrics import summary_metrics
from ferx.models.checkpoint import load_model
from ferx.models.inference import predict_logits
from ferx.params import load_params
from ferx.training.augment import augment_batch
from ferx.training.class_weights import class_weights
from ferx.training.loop import train_mode, train_step
from ferx.training.optim import make_optimizer


def one_epoch(model, x, y, train, weights, generator, step: bool) -> None:
    train_mode(model)
    order = torch.randperm(len(y), generator=generator)
    optimizer = make_optimizer(model, train) if step else None
    for begin in range(0, len(y), train.batch_size):
        index = order[begin : begin + train.batch_size]
        batch = augment_batch(x[index].to(torch.float32), train.augment, generator)
        if step:
            train_step(model, batch, y[index], train, optimizer, weights)
        else:
            with torch.no_grad():
                model(batch)
    model.eval()


def score(model, x, y) -> tuple[dict[str, float], np.ndarray]:
    logits = predict_logits(model, x, 256, torch.device("cpu"), "channels_last")
    counts = np.bincount(logits.argmax(1).numpy(), minlength=NUM_CLASSES)
    return summary_metrics(logits, y), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    params = load_params(args.params)
    train = params.train.model_copy(
        update={"precision": "fp32", "lr": args.lr, "schedule": "constant"}
    )
    x_np, y_np = load_split(args.prepared / "train.npz")
    x, y = torch.from_numpy(x_np).unsqueeze(1), torch.from_numpy(y_np)
    px_np, py_np = load_split(args.prepared / "public_test.npz")
    px, py = torch.from_numpy(px_np).unsqueeze(1), torch.from_numpy(py_np)
    counts = np.bincount(y_np, minlength=NUM_CLASSES)
    baseline, _ = load_model(args.model)
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    print(f"one epoch each from {args.model}, lr {args.lr:g} constant, fp32, 2 threads")
    print(
        "| variant | PublicTest acc % | macro-F1 % | predicted per class ("
        + ", ".join(c[:3] for c in CLASS_NAMES)
        + ") |"
    )
    print("|---|---:|---:|---|")
    metrics, predicted = score(baseline, px, py)
    truth = np.bincount(py_np, minlength=NUM_CLASSES)
    print(f"| PublicTest's own labels | | | {' '.join(map(str, truth))} |")
    print(
        f"| baseline | {100 * metrics['accuracy']:.2f} | {100 * metrics['macro_f1']:.2f} | "
        f"{' '.join(map(str, predicted))} |"
    )
    variants = {
        "bn_only": (None, False),
        "plain": (None, True),
        "weights_999": (class_weights(counts, "effective", 0.999), True),
        "weights_9999": (class_weights(counts, "effective", 0.9999), True),
    }
    for name, (w, step) in variants.items():
        model = copy.deepcopy(baseline)
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + 1)
        weights = None if w is None else torch.tensor(w, dtype=torch.float32)
        one_epoch(model, x, y, train, weights, generator, step)
        metrics, predicted = score(model, px, py)
        print(
            f"| {name} | {100 * metrics['accuracy']:.2f} | {100 * metrics['macro_f1']:.2f} | "
            f"{' '.join(map(str, predicted))} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
