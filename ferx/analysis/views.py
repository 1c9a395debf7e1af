"""Which view to test a crop-trained network on: the whole face, or the centre window of the
size it trained on (train.augment.crop). The evaluate stage tests whole faces; this tool
measures both, single view and with TTA, on the prepared splits, for one model file:

    python -m ferx.analysis.views models/baseline.pt --window 40

The tool chooses nothing: PublicTest is the split a choice of view may be made on (with the
paired interval), PrivateTest is printed beside it to report. The interval is a paired
bootstrap over faces (ferx.experiments.stats) of centre minus whole, the same model.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ferx.data.splits import load_split
from ferx.errors import UserError
from ferx.experiments.stats import paired_bootstrap
from ferx.labels import SPLIT_TITLES
from ferx.models.checkpoint import load_model
from ferx.models.inference import predict_logits, predict_tta, window_views
from ferx.params import TTA_VIEWS, EvaluateParams


@dataclass(frozen=True)
class ViewScores:
    """Per-face correctness (1 / 0, the split's order) of each way of testing one model."""

    whole: np.ndarray
    whole_tta: np.ndarray
    centre: np.ndarray
    centre_tta: np.ndarray


def view_scores(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    window: int,
    tta: str,
    shift: int,
    batch_size: int = 128,
) -> ViewScores:
    """Right or wrong per face, on whole faces and on their centre window x window windows,
    single view and with `tta` (whole faces: shifted with edges repeated, as evaluate does;
    windows: moved inside the face)."""

    def correct(logits: torch.Tensor) -> np.ndarray:
        return (logits.argmax(1) == labels).numpy().astype(np.uint8)

    (centre,) = window_views(images, window, "none")  # the one centre window per face
    return ViewScores(
        whole=correct(predict_logits(model, images, batch_size)),
        whole_tta=correct(predict_tta(model, images, tta, shift, batch_size)),
        centre=correct(predict_logits(model, centre, batch_size)),
        centre_tta=correct(predict_tta(model, images, tta, shift, batch_size, window=window)),
    )


def views_table(scores: dict[str, ViewScores], window: int, tta: str) -> str:
    """One line per split: the four accuracies and centre minus whole with its interval."""
    views = f"{tta} TTA, {TTA_VIEWS[tta]} views"
    lines = [
        f"{'split':<12}  {'whole':>6}  {'whole+TTA':>9}  {f'centre{window}':>8}  "
        f"{f'centre{window}+TTA':>12}  centre - whole [95%], single view; with TTA  ({views})"
    ]
    for split, s in scores.items():
        single = paired_bootstrap(s.centre, s.whole)
        both = paired_bootstrap(s.centre_tta, s.whole_tta)
        lines.append(
            f"{SPLIT_TITLES[split]:<12}  {100 * s.whole.mean():6.2f}  "
            f"{100 * s.whole_tta.mean():9.2f}  {100 * s.centre.mean():8.2f}  "
            f"{100 * s.centre_tta.mean():12.2f}  "
            f"{_points(single.mean)} [{_points(single.low)}, {_points(single.high)}]; "
            f"{_points(both.mean)} [{_points(both.low)}, {_points(both.high)}]"
        )
    return "\n".join(lines)


def _points(fraction: float) -> str:
    return f"{100 * fraction:+.2f}"


def main(argv: list[str] | None = None) -> None:
    defaults = EvaluateParams()
    parser = argparse.ArgumentParser(
        prog="python -m ferx.analysis.views", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("model", type=Path, help="a ferx model file (.pt)")
    parser.add_argument(
        "--window", type=int, required=True, help="the centre window's side: train.augment.crop"
    )
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--splits", nargs="+", default=["public_test", "private_test"],
                        choices=["public_test", "private_test"])  # fmt: skip
    parser.add_argument("--tta", choices=list(TTA_VIEWS), default=defaults.tta)
    parser.add_argument("--shift", type=int, default=defaults.tta_shift)
    args = parser.parse_args(argv)
    try:  # a bad file, window or shift is one line, not a traceback
        model, _ = load_model(args.model)
        if getattr(getattr(model, "config", None), "arch", None) == "baseline_cnn":
            raise ValueError("baseline_cnn's dense layers take whole 48x48 faces only")
        if not 24 <= args.window <= 47:  # the crops train.augment.crop allows
            raise ValueError(f"--window: 24-47 pixels (train.augment.crop), got {args.window}")
        if args.shift < 1:
            raise ValueError(f"--shift: at least 1 pixel, got {args.shift}")
        scores = {}
        for split in args.splits:
            x, y = load_split(args.prepared / f"{split}.npz")
            images, labels = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)
            window_views(images[:1], args.window, args.tta, args.shift)  # room to move?
            scores[split] = view_scores(model, images, labels, args.window, args.tta, args.shift)
    except (UserError, ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"views: {exc}") from None
    print(f"{args.model}: whole faces against their centre {args.window}x{args.window} windows")
    print(views_table(scores, args.window, args.tta))


if __name__ == "__main__":
    main()
