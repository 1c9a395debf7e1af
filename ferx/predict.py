"""`ferx-predict`: the emotion in your own photos, with optional Grad-CAM overlays.

    ferx-predict photo.jpg faces/ [--model models/improved.pt] [--json] [--no-detect]
                 [--gradcam out.png]

Images that are not already 48x48 crops get their largest face found first (OpenCV's Haar
cascade, shipped inside the opencv-python-headless wheel), cropped with a margin, then
classified like the training data (grayscale, 48x48).
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

from ferx.explain import IMAGE_SUFFIXES, explain_batch
from ferx.faces import to_face_array
from ferx.labels import CLASS_NAMES, IMAGE_SIDE

DEFAULT_MODELS = (Path("models/improved.pt"), Path("models/baseline.pt"))


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


def find_largest_face(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the largest frontal face OpenCV's Haar cascade finds, or None."""
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError(
            "OpenCV's Haar cascade file is missing (install opencv-python-headless<5)"
        )
    side = min(gray.shape)
    faces = cascade.detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 10),) * 2
    )
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def crop_with_margin(gray: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    top, bottom = max(0, y - dy), min(gray.shape[0], y + h + dy)
    left, right = max(0, x - dx), min(gray.shape[1], x + w + dx)
    return gray[top:bottom, left:right]


def face_from_file(path: Path, detect: bool, margin: float) -> tuple[np.ndarray, list[int] | None]:
    """The 48x48 face to classify: as is for 48x48 crops, else the largest detected face."""
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L"))
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE) or not detect:
        return to_face_array(Image.fromarray(gray)), None
    box = find_largest_face(gray)
    if box is None:
        raise LookupError("no face found (use --no-detect to classify the whole image)")
    return to_face_array(Image.fromarray(crop_with_margin(gray, box, margin))), list(box)


def collect_files(paths: list[str]) -> list[Path]:
    files = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def predict_files(
    model, files: list[Path], detect: bool = True, margin: float = 0.2
) -> tuple[list[Prediction], np.ndarray, dict[str, np.ndarray] | None]:
    """One Prediction per file (errors recorded, not raised), the faces, and the explain maps."""
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
    result = explain_batch(model, stacked)
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


def write_gradcam(out: Path, predictions, faces, result) -> list[Path]:
    """One overlay PNG per classified image: OUT.png for one image, OUT_<name>.png for several."""
    from ferx.plots import plt, save_figure

    ok = [p for p in predictions if p.error is None]
    written = []
    for i, prediction in enumerate(ok):
        target = (
            out
            if len(ok) == 1
            else out.with_name(f"{out.stem}_{Path(prediction.file).stem}{out.suffix or '.png'}")
        )
        fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.4))
        axes[0].imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        axes[1].imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        axes[1].imshow(result["gradcam"][i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for ax, name in zip(axes, ("face (48x48)", "Grad-CAM"), strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
        fig.suptitle(
            f"{Path(prediction.file).name}: {prediction.predicted} "
            f"({prediction.probabilities[prediction.predicted]:.2f})",
            fontsize=9,
        )
        save_figure(fig, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferx-predict", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="image files or folders of images")
    parser.add_argument(
        "--model", type=Path, help="default: models/improved.pt, else models/baseline.pt"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--no-detect", action="store_true", help="classify whole images, no face detection"
    )
    parser.add_argument(
        "--margin", type=float, default=0.2, help="face crop margin (fraction of the box)"
    )
    parser.add_argument("--gradcam", type=Path, metavar="OUT.png", help="write Grad-CAM overlays")
    args = parser.parse_args(argv)

    from ferx.checkpoint import CheckpointError, load_model

    model_path = args.model or next((p for p in DEFAULT_MODELS if p.exists()), DEFAULT_MODELS[-1])
    try:
        model, meta = load_model(model_path)
    except CheckpointError as exc:
        print(f"error: {exc} (train one with `dvc repro`, or pass --model)", file=sys.stderr)
        return 2
    if meta.get("source") != "real":
        print(
            f"warning: {model_path} was trained on {meta.get('source', 'unknown')} data, not "
            "FER2013: its predictions on real faces mean nothing (see data/raw/README.md)",
            file=sys.stderr,
        )
    files = collect_files(args.paths)
    if not files:
        print("error: no image files given", file=sys.stderr)
        return 2
    predictions, faces, result = predict_files(
        model, files, detect=not args.no_detect, margin=args.margin
    )
    if args.json:
        print(
            json.dumps(
                {"model": str(model_path), "predictions": [p.as_dict() for p in predictions]},
                indent=2,
            )
        )
    else:
        print(f"model: {model_path}")
        print(format_table(predictions))
    for prediction in predictions:
        if prediction.error:
            print(f"warning: {prediction.file}: {prediction.error}", file=sys.stderr)
    if result is not None and args.gradcam:
        for path in write_gradcam(args.gradcam, predictions, faces, result):
            print(f"Grad-CAM overlay: {path}", file=sys.stderr)
    return 0 if result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
