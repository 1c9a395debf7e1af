"""dvc stage `evaluate@<model>-<split>`: metrics, per-class report and confusion matrix."""

import argparse
from pathlib import Path

import torch

from ferx import paths
from ferx.analysis.evaluate import (
    confusion,
    correct_text,
    evaluate_logits,
    plot_confusion,
    predicted_text,
    write_confusion_json,
)
from ferx.atomic import write_json
from ferx.cli import run_stage
from ferx.data.splits import data_source, load_split
from ferx.labels import EVAL_SPLITS, SPLIT_TITLES
from ferx.models.checkpoint import load_model
from ferx.models.inference import TTA_VIEWS, predict_logits, predict_tta
from ferx.params import Params


def main(params: Params, model_name: str, split: str) -> None:
    model, _ = load_model(paths.model_file(model_name), params.train.model.arch)
    x, y = load_split(Path(params.prepare.out_dir) / f"{split}.npz")
    images, labels = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)
    runtime = params.runtime
    inference = {"batch_size": runtime.eval_batch_size, "layout": runtime.memory_format}
    logits = predict_logits(model, images, **inference)
    source = data_source(params.prepare.out_dir)
    report = evaluate_logits(logits, labels)
    # per face, in the split's order: right or wrong, and the class predicted (no pixels)
    faces = {"correct": correct_text(logits, labels), "predicted": predicted_text(logits)}
    tta = params.evaluate.tta
    if tta != "none":  # beside the single-view figures, never instead of them
        tta_logits = predict_tta(model, images, tta, params.evaluate.tta_shift, **inference)
        report["tta"] = {"views": tta, "n_views": TTA_VIEWS[tta]}
        report["tta"] |= evaluate_logits(tta_logits, labels)
        faces |= {
            "tta_correct": correct_text(tta_logits, labels),
            "tta_predicted": predicted_text(tta_logits),
        }
    write_json(
        paths.evaluation(model_name, split),
        {
            "source": source,
            "model": model_name,
            "split": SPLIT_TITLES[split],
            **report,
            **faces,
        },
    )
    write_confusion_json(paths.confusion_records(model_name, split), labels, logits)
    title = f"{model_name} on {SPLIT_TITLES[split]} ({source} data)"
    plot_confusion(confusion(labels, logits), paths.confusion_figure(model_name, split), title)
    print(
        f"evaluate {model_name} {SPLIT_TITLES[split]}: accuracy {report['accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}"
        + (
            f"; {tta} TTA ({TTA_VIEWS[tta]} views): accuracy {report['tta']['accuracy']:.4f}"
            if "tta" in report
            else ""
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=["baseline", "improved"])
    parser.add_argument("--split", required=True, choices=sorted(EVAL_SPLITS.values()))
    args = parser.parse_args()
    run_stage(lambda params: main(params, args.model, args.split))
