"""dvc stage `train`: the baseline mini-Xception on the prepared splits."""

from ferx import paths
from ferx.cli import run_stage
from ferx.params import Params
from ferx.training.run import train_and_save


def main(params: Params) -> None:
    train_and_save(params, name="train", **vars(paths.TRAIN))


if __name__ == "__main__":
    run_stage(main)
