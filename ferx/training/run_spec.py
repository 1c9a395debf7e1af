"""What a training run is given and gives back: the splits as tensors, where it writes and
what distinguishes improve from train (RunSpec), and its result (FitResult). Apart from the
loop, so that resume and progress read these types without importing the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ferx.data.splits import load_split
from ferx.labels import SPLITS


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8, N x 1 x 48 x 48
    y: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.y)


def splits_of(table: Any) -> dict[str, Split]:
    """train, public_test and private_test of a ferx.data.fercsv.FerTable, parsed or drawn
    (no files; typed loosely so that training does not import the CSV parser)."""
    return {
        name: Split(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y))
        for usage, name in SPLITS.items()
        for x, y in [table.split(usage)]
    }


def load_splits(prepared_dir: str | Path) -> dict[str, Split]:
    """train, public_test and private_test as tensors (pixels stay uint8 until batched)."""
    splits = {}
    for name in SPLITS.values():
        x, y = load_split(Path(prepared_dir) / f"{name}.npz")
        splits[name] = Split(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y))
    return splits


@dataclass
class RunSpec:
    """Where a run writes, and what distinguishes improve from train."""

    name: str  # "train" or "improve": prefixes log lines
    state_path: Path  # per-epoch resume checkpoint
    live_dir: Path | None = None  # DVCLive folder; None turns DVCLive off (tests)
    select_metric: str = "accuracy"  # PublicTest metric that picks the best epoch
    class_weights: torch.Tensor | None = None
    # added to the logits in the training loss only (a logit-adjusted loss, Menon et al.
    # 2021: tau * log prior; tau 1 is the balanced softmax of Ren et al. 2020), never at
    # inference: the model learns to make up for the prior
    logit_offset: torch.Tensor | None = None
    # each epoch's draw: "shuffle" (every face once) or "class_balanced" (as many draws, with
    # replacement, each class equally likely: the sampling of classifier re-training, cRT)
    sampling: str = "shuffle"
    init_state_dict: dict[str, torch.Tensor] | None = None  # fine-tune from these weights
    fingerprint_extra: dict[str, Any] = field(default_factory=dict)
    # which weights learn (improve.retrain): "all"; "top": the deepest layers and the head;
    # "head": the classifier head (classifier re-training, Kang et al. 2020); "bias": its 7
    # biases. Frozen layers, BatchNorm statistics included, stay as loaded.
    trainable: str = "all"
    # called after every finished epoch, with the history so far (tests use it to interrupt)
    on_epoch_end: Callable[[list[dict[str, float]]], None] | None = None
    # what decides this sitting's bits (threads, ISA, precision: run.bits_record), kept in the
    # checkpoint with every earlier sitting's, so a resumed run records each of them
    sitting: dict[str, Any] | None = None
    # knowledge distillation (ferx.training.distill.Distill): a teacher whose softened
    # probabilities on each training batch join the loss; None: the labels alone
    distill: Any = None


@dataclass
class FitResult:
    best_state_dict: dict[str, torch.Tensor]
    best_epoch: int
    history: list[dict[str, float]]
    seconds: float
    # fine-tuning only: the starting weights' PublicTest / PrivateTest metrics ("epoch 0")
    start: dict[str, float] | None = None
    # one record per sitting that trained epochs (RunSpec.sitting, with its first epoch)
    sittings: list[dict[str, Any]] = field(default_factory=list)
