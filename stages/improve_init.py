"""dvc stage `improve_init`: what improve starts from (the baseline's copy, or "scratch")."""

from ferx.cli import run_stage
from ferx.params import Params
from ferx.training.improve_init import write_improve_init


def main(params: Params) -> None:
    written = write_improve_init(params.improve.init)
    print(f"improve_init: improve starts from {params.improve.init} ({written})")


if __name__ == "__main__":
    run_stage(main)
