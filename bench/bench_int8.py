"""An exported model against its int8 copies on this CPU, judged by issue 43's gate.

    python bench/bench_int8.py [--model models/baseline.onnx] [--data data/prepared]
                               [--modes dynamic static] [--rounds 3] [--seconds 1.5]

Quantises the ONNX file (ferx/deploy/int8.py: ONNX Runtime's dynamic quantisation, and static
QDQ calibrated on --calibration Training faces), times each graph in ONNX Runtime at batch 1 and
at --batch, the graphs in turn round by round (the order reversed every other round, so the
machine's drift hits all alike), counts the faces each int8 copy labels as the float model does
on PublicTest (the gate's split) and PrivateTest (reported), and prints the gate's verdict, one
line per mode: `int8 <mode>: accepted|refused: ...`.

Without --model it exports a freshly initialised network of params.yaml's default; without
--data it labels random faces (speed and the gate's arithmetic, not a model's agreement).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ferx.cpu import describe_cpu


def default_random_model(folder: Path, params_path: Path) -> Path:
    """params.yaml's default network, freshly initialised, exported as the export stage does."""
    import torch

    from ferx.deploy.export import export_onnx
    from ferx.models import build_model
    from ferx.params import load_params
    from ferx.training.run import model_config

    torch.manual_seed(0)
    path = folder / "default_random.onnx"
    config = model_config(load_params(params_path).train.model)
    export_onnx(build_model(config).eval(), path, {"source": "none"})
    return path


def faces(data: Path | None, split: str, limit: int | None = None) -> np.ndarray:
    """A prepared split's faces (N x 48 x 48, uint8; `limit` drawn at random), or random
    faces without --data (2,000, or `limit`)."""
    if data is None:
        rng = np.random.default_rng({"public_test": 1, "private_test": 2, "train": 3}[split])
        return rng.integers(0, 256, (limit or 2000, 48, 48), dtype=np.uint8)
    from ferx.data.splits import load_split

    x, _ = load_split(data / f"{split}.npz")
    return x if limit is None else x[np.random.default_rng(0).permutation(len(x))[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an exported ferx ONNX file")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, help="prepare's folder (public_test.npz, ...)")
    parser.add_argument("--modes", nargs="+", default=["dynamic", "static"])
    parser.add_argument("--calibration", type=int, default=512, help="Training faces (static)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    print(describe_cpu(), flush=True)  # no figure without the machine it came from
    from ferx.deploy.int8 import MODES, judge_int8, quantize
    from ferx.onnx_model import OnnxModel

    bad = [m for m in args.modes if m not in MODES]
    if bad or len(set(args.modes)) < len(args.modes):
        parser.error(f"--modes: each of {', '.join(MODES)} at most once")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = args.model or default_random_model(folder, args.params)
        paths = {"float": model}
        calibration = faces(args.data, "train", args.calibration)
        for mode in args.modes:
            paths[mode] = quantize(model, folder / f"int8_{mode}.onnx", mode, calibration)
        print(
            f"{model} ({'faces of ' + str(args.data) if args.data else 'random faces'}), "
            f"ONNX Runtime, {args.threads} threads"
        )
        for name, path in paths.items():
            print(f"{name:<8} {path.stat().st_size / 1e3:8.0f} kB")
        from bench_onnx import time_alternately  # beside this file: the same alternating rounds

        speeds = time_alternately(paths, args, args.threads)
        labels = {
            split: {
                name: OnnxModel(path, args.threads).logits(faces(args.data, split)).argmax(1)
                for name, path in paths.items()
            }
            for split in ("public_test", "private_test")
        }
        for mode in args.modes:
            public, private = labels["public_test"], labels["private_test"]
            verdict = judge_int8(public["float"], public[mode], speeds["float"][0], speeds[mode][0])
            same_private = 100 * float(np.mean(private["float"] == private[mode]))
            caveat = "" if args.model and args.data else "; random model or faces: not a verdict"
            print(
                f"int8 {mode}: {verdict.reason} (PublicTest; PrivateTest: {same_private:.2f} %"
                f"{caveat})"
            )


if __name__ == "__main__":
    main()
