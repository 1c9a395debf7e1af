"""The Python API: `from ferx import Recognizer`.

    from ferx import Recognizer
    recognizer = Recognizer("models/improved.onnx")      # or a .pt model file; no argument:
    faces = recognizer.predict("photo.jpg")              # the default ferx-predict uses
    print(faces[0].label, faces[0].probabilities)

`predict` takes a path, a PIL image or a numpy array (H x W grey, H x W x 3 RGB or H x W x 4
RGBA; uint8, or floats in 0..255), or a list of them (then it returns one list per image),
and returns every face it finds, largest first, each with its box in the image (x, y, width,
height; None for a 48x48 crop, taken as it is, or with `detect=False`), its label and the
seven class probabilities. Faces are found, cropped and classified exactly as `ferx-predict`
does (its result for an image is the first face here), all faces of a call in one batch. An
ONNX model needs no PyTorch; a `.pt` model imports it when loaded. Every error a caller can
make (a missing or unreadable file, an array of the wrong shape, an image without a face, a
file that is no ferx model) is a `RecognizerError` whose message says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferx.data.faces import faces_in
from ferx.errors import UserError
from ferx.labels import CLASS_NAMES

Box = tuple[int, int, int, int]


class RecognizerError(UserError):
    """What a caller can get wrong: the message names the image or model and the problem."""


@dataclass(frozen=True)
class Face:
    box: Box | None  # x, y, width, height in the image; None: the whole image was the face
    label: str  # the most probable of CLASS_NAMES
    probabilities: dict[str, float]  # every class, summing to 1

    def as_dict(self) -> dict[str, Any]:
        box = None if self.box is None else list(self.box)
        return {"box": box, "label": self.label, "probabilities": dict(self.probabilities)}


class Recognizer:
    """A trained ferx model, ready to classify faces in images (see the module's docstring)."""

    def __init__(
        self, model: str | Path | None = None, detect: bool = True, margin: float = 0.2
    ) -> None:
        from ferx.deploy.predict import DEFAULT_MODELS, MARGIN_RANGE, default_model, load_any_model

        if model is None:
            model = default_model()
            if model is None:
                raise RecognizerError(
                    "no model given and none found at "
                    + " or ".join(str(p) for p in DEFAULT_MODELS)
                    + " and this installation has no released model: pass "
                    "Recognizer('path/to/model.onnx') (or .pt), or train one with `dvc repro`"
                )
        self.model_path = Path(model)
        if not self.model_path.is_file():
            raise RecognizerError(f"{self.model_path}: no such model file")
        try:
            self.model, self.meta = load_any_model(self.model_path)
        except UserError as exc:
            raise RecognizerError(str(exc)) from None
        low, high = MARGIN_RANGE
        if not low <= margin <= high:  # also refuses nan
            raise RecognizerError(f"margin must be between {low:g} and {high:g}, got {margin}")
        self.detect, self.margin = detect, margin

    def predict(self, images: Any) -> list[Face] | list[list[Face]]:
        """The faces in one image (a list of Face), or in each of a list of images (a list of
        such lists, in order). Raises RecognizerError for an image without a face."""
        batch = isinstance(images, list | tuple) or (
            isinstance(images, np.ndarray) and _is_array_batch(images)
        )
        items = list(images) if batch else [images]
        if not items:
            return []
        found = [self._faces(image, index if batch else None) for index, image in enumerate(items)]
        crops = [face for faces in found for face, _ in faces]
        probabilities = self._probabilities(np.stack(crops))  # every image has a face
        results, start = [], 0
        for faces in found:
            rows = probabilities[start : start + len(faces)]
            start += len(faces)
            results.append([_face(box, row) for (_, box), row in zip(faces, rows, strict=True)])
        return results if batch else results[0]

    def _faces(self, image: Any, index: int | None) -> list[tuple[np.ndarray, Box | None]]:
        name = _describe(image, index)
        gray = _gray(image, name)
        faces = faces_in(gray, self.detect, self.margin)
        if not faces:
            raise RecognizerError(
                f"{name}: no face found (Recognizer(..., detect=False) classifies the whole image)"
            )
        return faces

    def _probabilities(self, faces: np.ndarray) -> np.ndarray:
        from ferx.deploy.predict import class_probabilities

        return class_probabilities(self.model, faces)

    def __repr__(self) -> str:
        return f"Recognizer({str(self.model_path)!r}, source={self.meta.get('source')!r})"


def _is_array_batch(array: np.ndarray) -> bool:
    # N x H x W (grey) or N x H x W x C; one H x W x C image has 1, 3 or 4 channels last
    return array.ndim == 4 or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4))


def _describe(image: Any, index: int | None) -> str:
    """How an error names the image: its path, or what it is (and its place in a list)."""
    what = str(image) if isinstance(image, str | Path) else f"the {type(image).__name__}"
    return what if index is None else f"image {index} ({what})"


def _gray(image: Any, name: str) -> np.ndarray:
    """Any accepted image as an H x W uint8 grey array (PIL's luminance for colour)."""
    if isinstance(image, str | Path):
        try:
            with Image.open(image) as opened:
                return np.asarray(opened.convert("L"))
        except FileNotFoundError:
            raise RecognizerError(f"{name}: file not found") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise RecognizerError(f"{name}: not a readable image") from None
    if isinstance(image, Image.Image):
        try:
            return np.asarray(image.convert("L"))
        except (OSError, ValueError) as exc:
            raise RecognizerError(f"{name}: cannot be read as an image ({exc})") from None
    if isinstance(image, np.ndarray):
        return _gray_array(image, name)
    raise RecognizerError(
        f"{name}: expected a path, a PIL image or a numpy array, got {type(image).__name__}"
    )


def _gray_array(array: np.ndarray, name: str) -> np.ndarray:
    shape = "x".join(map(str, array.shape))
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise RecognizerError(
            f"{name}: an array of shape {shape}; expected H x W (grey), H x W x 3 (RGB) or "
            "H x W x 4 (RGBA)"
        )
    if min(array.shape[:2]) < 1 or not np.issubdtype(array.dtype, np.number):
        raise RecognizerError(f"{name}: an empty or non-numeric array ({shape}, {array.dtype})")
    if array.dtype != np.uint8:
        finite = np.isfinite(array).all()
        if not finite or array.min() < 0 or array.max() > 255:
            raise RecognizerError(
                f"{name}: pixel values outside 0..255 (or not finite); pass uint8 or 0..255"
            )
        array = np.round(array).astype(np.uint8)
    # uint8 H x W, H x W x 3 and H x W x 4 arrays open as L, RGB and RGBA images
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).convert("L"))


def _face(box: Box | None, probabilities: np.ndarray) -> Face:
    label = CLASS_NAMES[int(probabilities.argmax())]
    values = {name: float(p) for name, p in zip(CLASS_NAMES, probabilities, strict=True)}
    return Face(None if box is None else tuple(int(v) for v in box), label, values)


__all__ = ["Face", "Recognizer", "RecognizerError"]
