"""dvc stage `explain@<model>`: Grad-CAM and guided Grad-CAM on each probe folder, and the
strongest feature maps of each block for the first face of each folder."""

import argparse
from pathlib import Path

import numpy as np

from ferx import paths
from ferx.analysis.activations import activation_record, plot_activations, strongest_maps
from ferx.analysis.explain import explain_batch, holds_images, load_probes, plot_grid, summarise
from ferx.atomic import write_json
from ferx.cli import run_stage
from ferx.labels import PROBE_SETS
from ferx.models.checkpoint import load_model
from ferx.params import Params


def main(params: Params, model_name: str) -> None:
    model, meta = load_model(paths.model_file(model_name), params.train.model.arch)
    source = meta.get("source", "unknown")  # the data the model was trained on
    folders = {name: Path(params.prepare.probes_dir) / name for name in PROBE_SETS}
    folders["user_probes"] = Path(params.explain.user_probes)
    sets, activations = {}, {}
    for name, folder in folders.items():
        if name == "user_probes" and folder.is_dir() and not holds_images(folder):
            print(f"explain {model_name} {folder}: no images yet, skipped")
            continue
        probes = load_probes(folder)
        result = explain_batch(model, np.stack([p.image for p in probes]))
        sets[name] = summarise(probes, result, model_name, folder)
        share = sets[name]["share_correct"]
        title = f"{model_name} on probes '{name}' ({source} data): {share:.0%} correct"
        plot_grid(probes, result, paths.gradcam_figure(model_name, name), title)
        print(f"explain {model_name} {folder}: {share:.0%} of {len(probes)} correct")
        face = probes[0]
        blocks, predicted = strongest_maps(model, face.image)
        figure = paths.activations_figure(model_name, name)
        plot_activations(
            face.image,
            blocks,
            figure,
            f"{model_name}: the most active maps per block for {face.path.name} ({source} data)",
        )
        activations[name] = activation_record(blocks, face.path.name, predicted) | {
            "figure": str(figure)
        }
    write_json(
        paths.explanation(model_name),
        {
            "source": source,
            "model": model_name,
            "share_correct": {name: s["share_correct"] for name, s in sets.items()},
            "sets": sets,
            "activations": activations,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=["baseline", "improved"])
    args = parser.parse_args()
    run_stage(lambda params: main(params, args.model))
