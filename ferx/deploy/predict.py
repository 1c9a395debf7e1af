"""`ferx-predict`: the emotion in your own photos and videos, with optional Grad-CAM overlays.

    ferx-predict photo.jpg faces/ [--model models/improved.pt] [--json] [--no-detect]
                 [--gradcam out.png]
    ferx-predict clip.mp4 [--video-out annotated.mp4] [--csv timeline.csv] [--every N]

Images that are not already 48x48 crops get their largest face found first (OpenCV's
frontal-face Haar cascade: OpenCV's own code where it is installed, else ferx.data.haar),
cropped with a margin, then classified like the training data (grayscale, 48x48). In a
video (OpenCV needed) every face of every frame is found, classified, boxed and labelled.
`--model` takes a `.pt` model file (PyTorch needed) or its ONNX export (`models/*.onnx`, run
with ONNX Runtime: same predictions, no PyTorch needed at inference).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferx.data.faces import IMAGE_SUFFIXES, faces_in
from ferx.deploy.outputs import clashing_output, gradcam_targets, write_gradcam
from ferx.errors import UserError
from ferx.extras import MissingExtra, require
from ferx.labels import CLASS_NAMES, IMAGE_SIDE
from ferx.paths import model_file

DEFAULT_MODELS = (model_file("improved"), model_file("baseline"))


def default_model() -> Path | None:
    """Your run's improved model, else its baseline, else ferx's released model (if this
    installation has one: ferx/release/), else None."""
    from ferx.deploy.release import released_model

    return next((p for p in DEFAULT_MODELS if p.exists()), None) or released_model()


def describe_model(path: Path) -> str:
    """How the output names the model: its path, and what it is when it is the release."""
    from ferx.deploy.release import RELEASE_DIR

    released = path.resolve().parent == RELEASE_DIR
    return f"{path} (ferx's released model, trained on FER2013)" if released else str(path)


MARGIN_RANGE = (0.0, 1.0)  # share of the face box added on each side; below -0.5 nothing is left


@dataclass
class Prediction:
    file: str
    predicted: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    face_box: list[int] | None = None  # x, y, width, height in the original image
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "face_box": self.face_box,
            "error": self.error,
        }


def face_from_file(path: Path, detect: bool, margin: float) -> tuple[np.ndarray, list[int] | None]:
    """The 48x48 face to classify: as is for 48x48 crops, else the largest detected face."""
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L"))
    faces = faces_in(gray, detect, margin, largest_only=True)
    if not faces:
        raise LookupError("no face found (use --no-detect to classify the whole image)")
    face, box = faces[0]
    return face, None if box is None else list(box)


def collect_files(paths: list[str]) -> list[Path]:
    """The image files named or inside named folders, each once (a file named twice, or named
    and inside a named folder, is classified once), in the order given."""
    files, seen = [], set()
    for name in paths:
        path = Path(name)
        found = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


def load_any_model(path: Path) -> tuple[Any, dict[str, Any]]:
    """A `.pt` model file (PyTorch) or an `.onnx` export (ONNX Runtime), and its metadata."""
    if path.suffix.lower() == ".onnx":
        from ferx.onnx_model import OnnxModel

        model = OnnxModel(path)
        return model, model.meta
    require("torch", f"{path}: a .pt model (an .onnx export would not)", "pipeline")
    from ferx.models.checkpoint import load_model

    return load_model(path)


def class_probabilities(model, faces: np.ndarray) -> np.ndarray:
    """Class probabilities (N x 7) for uint8 faces (N x 48 x 48), from either kind of model."""
    from ferx.onnx_model import OnnxModel, softmax

    if isinstance(model, OnnxModel):
        return softmax(model.logits(faces))
    import torch

    from ferx.models.inference import predict_logits

    logits = predict_logits(model, torch.from_numpy(faces).unsqueeze(1), layout="contiguous")
    return torch.softmax(logits, dim=1).numpy()


def predict_files(
    model, files: list[Path], detect: bool = True, margin: float = 0.2, gradcam: bool = False
) -> tuple[list[Prediction], np.ndarray, dict[str, np.ndarray] | None]:
    """One Prediction per file (errors recorded, not raised), the faces, and the class
    probabilities with, given `gradcam` (PyTorch models only), the explain maps."""
    predictions, faces = [], []
    for path in files:
        prediction = Prediction(str(path))
        try:
            face, prediction.face_box = face_from_file(path, detect, margin)
            faces.append(face)
        except FileNotFoundError:
            prediction.error = "file not found"
        except (UnidentifiedImageError, OSError, ValueError):
            prediction.error = "not a readable image"
        except LookupError as exc:
            prediction.error = str(exc)
        predictions.append(prediction)
    if not faces:
        return predictions, np.empty((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8), None
    stacked = np.stack(faces)
    if gradcam:
        from ferx.models.gradcam import explain_batch

        result = explain_batch(model, stacked)
    else:
        result = {"probabilities": class_probabilities(model, stacked)}
    ok = [p for p in predictions if p.error is None]
    for prediction, probabilities in zip(ok, result["probabilities"], strict=True):
        prediction.predicted = CLASS_NAMES[int(probabilities.argmax())]
        prediction.probabilities = {
            n: round(float(v), 4) for n, v in zip(CLASS_NAMES, probabilities, strict=True)
        }
    return predictions, stacked, result


def format_table(predictions: list[Prediction]) -> str:
    width = max([len("file")] + [len(p.file) for p in predictions])
    head = f"{'file':<{width}}  {'emotion':<9}" + "".join(f"{n[:8]:>9}" for n in CLASS_NAMES)
    lines = [head, "-" * len(head)]
    for p in predictions:
        if p.error:
            lines.append(f"{p.file:<{width}}  error: {p.error}")
        else:
            probs = "".join(f"{p.probabilities[n]:>9.3f}" for n in CLASS_NAMES)
            lines.append(f"{p.file:<{width}}  {p.predicted:<9}{probs}")
    return "\n".join(lines)


def predict_video(model, path: Path, args: argparse.Namespace) -> int:
    require("cv2", "reading and writing videos", "video")
    from ferx.deploy.video import annotate_video

    summary = annotate_video(
        path,
        lambda faces: class_probabilities(model, faces),
        video_out=args.video_out,
        csv_out=args.csv,
        every=args.every,
        margin=args.margin,
    )
    counts = ", ".join(f"{n} {c}" for n, c in sorted(summary.counts.items(), key=lambda i: -i[1]))
    print(
        f"{path}: {summary.frames} frames at {summary.fps:.1f} fps, {summary.classified_frames} "
        f"classified, {summary.rows} face rows ({counts})"
    )
    for label, out in (("annotated video", args.video_out), ("timeline", args.csv)):
        if out is not None:
            print(f"{label}: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferx-predict", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="image files, folders of images, or one video")
    parser.add_argument(
        "--model",
        type=Path,
        help="a .pt model file or its .onnx export; default: "
        + ", else ".join(str(path) for path in DEFAULT_MODELS)
        + ", else ferx's released model",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--no-detect", action="store_true", help="classify whole images, no face detection"
    )
    parser.add_argument(
        "--margin", type=float, default=0.2, help="face crop margin (fraction of the box)"
    )
    parser.add_argument("--gradcam", type=Path, metavar="OUT.png", help="write Grad-CAM overlays")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (--gradcam, --video-out, --csv); inputs never",
    )
    video = parser.add_argument_group("videos")
    video.add_argument(
        "--video-out", type=Path, metavar="OUT.mp4", help="the video with faces boxed, labelled"
    )
    video.add_argument("--csv", type=Path, metavar="OUT.csv", help="one row per frame and face")
    video.add_argument(
        "--every", type=int, default=1, metavar="N", help="classify every Nth frame (default 1)"
    )
    args = parser.parse_args(argv)
    if not MARGIN_RANGE[0] <= args.margin <= MARGIN_RANGE[1]:
        return _error(
            f"--margin must be between {MARGIN_RANGE[0]:g} and {MARGIN_RANGE[1]:g} (the share of "
            f"the face box added on each side), got {args.margin:g}"
        )
    if args.every < 1:
        return _error(f"--every must be 1 or more (classify every Nth frame), got {args.every}")

    from ferx.deploy.video import is_video

    videos = [Path(p) for p in args.paths if is_video(Path(p))]
    if videos and len(args.paths) > 1:
        return _error("give one video at a time (no other files beside it)")
    if not videos and (args.video_out or args.csv or args.every != 1):
        return _error("--video-out, --csv and --every are for a video file")
    if videos and args.gradcam:
        return _error("--gradcam is for images; for a video use --video-out and --csv")
    model_path = args.model or default_model() or DEFAULT_MODELS[-1]
    if args.gradcam and model_path.suffix.lower() == ".onnx":
        return _error("--gradcam needs the PyTorch model file (.pt), not its ONNX export")
    files = videos or collect_files(args.paths)
    targets = gradcam_targets(args.gradcam, files) if args.gradcam and files else {}
    outputs = [(flag, out) for flag, out in (("--video-out", args.video_out), ("--csv", args.csv))]
    outputs += [("--gradcam", target) for target in targets.values()]
    clash = clashing_output(
        [(f, o) for f, o in outputs if o is not None], [*files, model_path], args.overwrite
    )
    if clash:  # before any work: a source video, photo, model or earlier result is kept
        return _error(clash)
    try:
        model, meta = load_any_model(model_path)
    except MissingExtra as exc:
        return _error(str(exc))
    except UserError as exc:
        return _error(f"{exc} (train one with `dvc repro`, or pass --model)")
    if meta.get("source") != "real":
        print(
            f"warning: {model_path} was trained on {meta.get('source', 'unknown')} data, not "
            "FER2013: its predictions on real faces mean nothing (see data/raw/README.md)",
            file=sys.stderr,
        )
    if videos:
        try:
            return predict_video(model, videos[0], args)
        except UserError as exc:
            return _error(str(exc))
    if not files:
        return _error("no image files given")
    predictions, faces, result = predict_files(
        model, files, detect=not args.no_detect, margin=args.margin, gradcam=bool(args.gradcam)
    )
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(model_path),
                    "model_is": describe_model(model_path),
                    "predictions": [p.as_dict() for p in predictions],
                },
                indent=2,
            )
        )
    else:
        print(f"model: {describe_model(model_path)}")
        print(format_table(predictions))
    for prediction in predictions:
        if prediction.error:
            print(f"warning: {prediction.file}: {prediction.error}", file=sys.stderr)
    if result is not None and args.gradcam:
        for source, path in write_gradcam(targets, predictions, faces, result):
            print(f"Grad-CAM overlay of {source}: {path}", file=sys.stderr)
    return 0 if result is not None else 1


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
