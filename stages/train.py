"""dvc stage `train`: the baseline mini-Xception on the prepared splits."""

from pathlib import Path

from ferx.cli import run_stage
from ferx.params import Params
from ferx.training.run import train_and_save


def main(params: Params) -> None:
    train_and_save(
        params,
        name="train",
        model_path=Path("models/baseline.pt"),
        metrics_path=Path("metrics/train.json"),
        state_path=Path("checkpoints/train/state.pt"),
        live_dir=Path("dvclive/train"),
        plots_dir=Path("plots/train"),
    )


if __name__ == "__main__":
    run_stage(main)
