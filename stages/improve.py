"""dvc stage `improve`: retraining aimed at the rare classes (class weights, a logit-adjusted
loss, class-balanced sampling) and post-hoc logit adjustment, each as params.yaml says."""

from pathlib import Path

import numpy as np
import torch

from ferx import paths
from ferx.cli import run_stage
from ferx.data.splits import load_split
from ferx.labels import CLASS_NAMES, NUM_CLASSES
from ferx.models.checkpoint import load_model
from ferx.params import Params
from ferx.training.class_weights import class_weights
from ferx.training.improve_init import BASELINE_COPY
from ferx.training.logit_adjust import LogitAdjust
from ferx.training.run import train_and_save


def main(params: Params) -> None:
    improve = params.improve
    _, y = load_split(Path(params.prepare.out_dir) / "train.npz")
    counts = np.bincount(y, minlength=NUM_CLASSES)
    weights = class_weights(counts, improve.weighting, improve.beta)
    log_prior = torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)
    print(
        "improve: class weights "
        + ", ".join(f"{n} {w:.3f}" for n, w in zip(CLASS_NAMES, weights, strict=True))
    )
    init_model = None
    if improve.init == "baseline":
        start = paths.IMPROVE_INIT / BASELINE_COPY
        if not start.exists():
            raise FileNotFoundError(
                f"{start}: not found (the improve_init stage copies "
                f"{paths.TRAIN.model_path} there; run `dvc repro improve`)"
            )
        init_model = load_model(start, params.train.model.arch)[0]
    train_and_save(
        params,
        name="improve",
        **vars(paths.IMPROVE),
        train_params=improve.train_params(params.train),
        class_weights=torch.tensor(weights, dtype=torch.float32),
        init_model=init_model,
        trainable=improve.retrain,
        logit_offset=improve.loss_tau * log_prior if improve.loss_tau else None,
        sampling=improve.sampling,
        adjust=(
            LogitAdjust(log_prior, improve.adjust_max_accuracy_drop, improve.logit_adjust)
            if improve.logit_adjust != "none"
            else None
        ),
        extra_metrics={
            "weighting": improve.weighting,
            "init": improve.init,
            "retrain": improve.retrain,
            "loss_tau": improve.loss_tau,
            "sampling": improve.sampling,
            "class_weights": {
                n: round(float(w), 4) for n, w in zip(CLASS_NAMES, weights, strict=True)
            },
        },
    )


if __name__ == "__main__":
    run_stage(main)
