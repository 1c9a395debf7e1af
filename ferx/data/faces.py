"""Any image to the form the training data has: a 48x48 uint8 grayscale face."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from ferx.labels import IMAGE_SIDE

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def to_face_array(image: Image.Image) -> np.ndarray:
    """Any PIL image -> 48x48 uint8 grayscale (Lanczos when it must be resized)."""
    gray = image.convert("L")
    if gray.size != (IMAGE_SIDE, IMAGE_SIDE):
        gray = gray.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(gray, dtype=np.uint8)


@functools.cache
def _opencv_cascade():
    """OpenCV's frontal-face Haar cascade where OpenCV is installed (the pipeline's extras),
    else None; read from its XML file once per process (a video asks on every frame)."""
    try:
        import cv2
    except ImportError:
        return None
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError(
            "OpenCV's Haar cascade file is missing (install opencv-python-headless<5)"
        )
    return cascade


def find_faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of every frontal face the Haar cascade finds, largest first: OpenCV's
    where it is installed, else the same cascade run with numpy (ferx.data.haar: about 7x
    slower on an AMD Zen 3, BENCHMARKS.md; the same boxes to a pixel or two), so that
    prediction needs no OpenCV."""
    side = min(gray.shape)
    min_size = max(24, side // 10)
    cascade = _opencv_cascade()
    if cascade is None:
        from ferx.data.haar import detect

        faces = detect(np.ascontiguousarray(gray, dtype=np.uint8), 1.1, 5, min_size)
    else:
        faces = cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size)
        )
    boxes = [tuple(int(v) for v in face) for face in faces]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def crop_with_margin(gray: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """The box grown by `margin` of its size on each side, clipped to the image."""
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    top, bottom = max(0, y - dy), min(gray.shape[0], y + h + dy)
    left, right = max(0, x - dx), min(gray.shape[1], x + w + dx)
    return gray[top:bottom, left:right]


def faces_in(
    gray: np.ndarray, detect: bool = True, margin: float = 0.2, largest_only: bool = False
) -> list[tuple[np.ndarray, tuple[int, int, int, int] | None]]:
    """The 48x48 faces to classify in a grey image, with their boxes, largest first: a 48x48
    image (or any image with `detect` off) is one face as it is (box None); otherwise every
    face the Haar cascade finds, cropped with `margin` (none found: an empty list)."""
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE) or not detect:
        return [(to_face_array(Image.fromarray(gray)), None)]
    boxes = find_faces(gray)[: 1 if largest_only else None]
    return [(to_face_array(Image.fromarray(crop_with_margin(gray, b, margin))), b) for b in boxes]
