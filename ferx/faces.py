"""Any image to the form the training data has: a 48x48 uint8 grayscale face."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ferx.labels import IMAGE_SIDE


def to_face_array(image: Image.Image) -> np.ndarray:
    """Any PIL image -> 48x48 uint8 grayscale (Lanczos when it must be resized)."""
    gray = image.convert("L")
    if gray.size != (IMAGE_SIDE, IMAGE_SIDE):
        gray = gray.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(gray, dtype=np.uint8)
