"""dvc stage `explain@<model>`: Grad-CAM and guided Grad-CAM on each probe folder."""

import argparse
from pathlib import Path

import numpy as np

from ferx.atomic import write_json
from ferx.checkpoint import load_model
from ferx.cli import run_stage
from ferx.data import data_source
from ferx.explain import explain_batch, holds_images, load_probes, plot_grid, summarise
from ferx.params import Params


def main(params: Params, model_name: str) -> None:
    model, _ = load_model(Path("models") / f"{model_name}.pt", params.train.model.arch)
    source = data_source()
    sets = {}
    for folder in params.explain.probe_dirs:
        if Path(folder).is_dir() and not holds_images(folder):
            print(f"explain {model_name} {folder}: no images yet, skipped")
            continue
        probes = load_probes(folder)
        result = explain_batch(model, np.stack([p.image for p in probes]))
        name = Path(folder).name
        sets[name] = summarise(probes, result, model_name, folder)
        share = sets[name]["share_correct"]
        title = f"{model_name} on probes '{name}' ({source} data): {share:.0%} correct"
        plot_grid(probes, result, Path("plots/explain") / model_name / f"{name}.png", title)
        print(f"explain {model_name} {folder}: {share:.0%} of {len(probes)} correct")
    write_json(
        Path("metrics/explain") / f"{model_name}.json",
        {
            "source": source,
            "model": model_name,
            "share_correct": {name: s["share_correct"] for name, s in sets.items()},
            "sets": sets,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=["baseline", "improved"])
    args = parser.parse_args()
    run_stage(lambda params: main(params, args.model))
