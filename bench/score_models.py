"""PublicTest and PrivateTest accuracy, macro-F1 and Disgust recall of model files.

    python bench/score_models.py models/baseline.pt models/improved.pt [--prepared data/prepared]

The README's improve comparison was made with it (run in the folder of a FER2013 run).
"""

from __future__ import annotations

import argparse

import torch

from ferx.analysis.evaluate import evaluate_logits
from ferx.cpu import describe_cpu
from ferx.data.splits import load_split
from ferx.models.checkpoint import load_model
from ferx.models.inference import predict_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--prepared", default="data/prepared")
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    splits = {}
    for split in ("public_test", "private_test"):
        x, y = load_split(f"{args.prepared}/{split}.npz")
        splits[split] = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long()
    for path in args.models:
        model = load_model(path)[0]
        parts = []
        for split, (x, y) in splits.items():
            metrics = evaluate_logits(predict_logits(model, x, 128), y)
            parts.append(
                f"{split} accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f} "
                f"disgust recall {metrics['per_class']['disgust']['recall']:.4f}"
            )
        print(f"{path}: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
