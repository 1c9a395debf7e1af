"""dvc stage `probes`: the PrivateTest probe faces explain shows (data/probes/test, test2)."""

from pathlib import Path

from ferx.cli import run_stage
from ferx.data.probes import write_probes
from ferx.data.splits import load_split
from ferx.params import Params


def main(params: Params) -> None:
    x, y = load_split(Path(params.prepare.out_dir) / "private_test.npz")
    written = write_probes(x, y, params.prepare)
    for folder, names in written.items():
        print(f"probes: {params.prepare.probes_dir}/{folder}: {', '.join(names)}")


if __name__ == "__main__":
    run_stage(main)
