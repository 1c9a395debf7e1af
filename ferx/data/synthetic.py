"""A small, seeded, learnable stand-in for FER2013: procedurally drawn 48x48 faces.

Every face is drawn with numpy for the whole batch at once: a head ellipse with lighting, eyes,
brows and a mouth, under random pose (rotation, scale, shift), brightness, contrast and noise.
The expression is carried by a few facial parameters per class (brow height and tilt, eye
opening, mouth curve, opening, width and asymmetry), each jittered per face. Some classes are
drawn close on purpose, as in FER: fear vs surprise (both brows up, eyes wide, mouth open) and
sad vs neutral (a faint frown and brow tilt). Class frequencies follow FER2013's Training split
(Disgust about 1.5%) and the three splits keep FER's 80/10/10 proportions.
"""

from __future__ import annotations

import numpy as np

from ferx.data.fercsv import USAGES, FerTable
from ferx.labels import CLASS_NAMES, IMAGE_SIDE

# FER2013 Training class counts (angry, disgust, fear, happy, sad, surprise, neutral).
FER_CLASS_COUNTS = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965])
FER_SPLIT_SHARE = np.array([28709, 3589, 3589]) / 35887
MIN_PER_CLASS_AND_SPLIT = 2  # so every split can show every class (probes, per-class recall)

# Per class: brow raise, brow tilt (+: inner ends down, angry), eye opening, mouth curve
# (+: smile), mouth opening, mouth width, mouth asymmetry. Units: fractions of the face size.
_EXPRESSIONS = np.array(
    [
        # raise  tilt   eye    curve  open   width  asym
        [-0.06, 0.14, 0.045, -0.05, 0.00, 0.22, 0.00],  # angry: brows down into a V, eyes narrow
        [-0.03, 0.08, 0.040, -0.08, 0.02, 0.20, 0.10],  # disgust: lop-sided sneer, narrow eyes
        [0.08, -0.09, 0.085, -0.03, 0.06, 0.30, 0.00],  # fear: inner brows up, wide mouth, open
        [0.00, 0.00, 0.055, 0.16, 0.03, 0.28, 0.00],  # happy: broad smile
        [0.02, -0.07, 0.050, -0.09, 0.00, 0.20, 0.00],  # sad: inner brows up, frown
        [0.11, -0.01, 0.095, 0.00, 0.11, 0.16, 0.00],  # surprise: brows high, round open mouth
        [0.00, 0.00, 0.060, -0.02, 0.00, 0.22, 0.00],  # neutral: everything at rest
    ],
    dtype=np.float32,
)
_JITTER = np.array([0.025, 0.035, 0.012, 0.035, 0.015, 0.03, 0.025], dtype=np.float32)


def class_counts(n_samples: int) -> np.ndarray:
    """Rows per split and class (3 x 7), FER-shaped, summing to about n_samples."""
    share = FER_CLASS_COUNTS / FER_CLASS_COUNTS.sum()
    counts = np.rint(np.outer(FER_SPLIT_SHARE, share) * n_samples).astype(int)
    return np.maximum(counts, MIN_PER_CLASS_AND_SPLIT)


def make_synthetic_fer(n_samples: int = 3000, seed: int = 0) -> FerTable:
    """Draw a synthetic FER-like table: rows ordered Training, PublicTest, PrivateTest."""
    rng = np.random.default_rng(seed)
    counts = class_counts(n_samples)
    labels = np.concatenate([rng.permutation(np.repeat(np.arange(7), row)) for row in counts])
    usage = np.repeat(np.arange(len(USAGES), dtype=np.int8), counts.sum(axis=1))
    pixels = draw_faces(labels, rng)
    return FerTable(pixels, labels.astype(np.int64), usage)


def draw_faces(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one 48x48 uint8 face per label, all at once."""
    n = len(labels)
    expr = _EXPRESSIONS[labels] + rng.normal(size=(n, 7)).astype(np.float32) * _JITTER
    brow_raise, brow_tilt, eye_open, curve, mouth_open, width, asym = (
        expr[:, i, None, None] for i in range(7)
    )
    eye_open = np.maximum(eye_open, 0.012)
    mouth_open = np.maximum(mouth_open, 0.0)
    width = np.clip(width, 0.1, 0.4)

    u, v = _pose_grid(n, rng)
    image = _background(n, rng)
    head = _soft(1.0 - ((u / 0.72) ** 2 + (v / 0.92) ** 2), 0.08)
    skin = rng.uniform(0.55, 0.85, (n, 1, 1)).astype(np.float32)
    light = 1.0 + rng.uniform(-0.35, 0.35, (n, 1, 1)).astype(np.float32) * u
    image = image * (1 - head) + head * skin * light

    dark = np.zeros_like(image)
    for side in (-1.0, 1.0):
        du, dv = u - side * 0.3, v + 0.18
        eye = _soft(1.0 - (du / 0.13) ** 2 - (dv / eye_open) ** 2, 0.25)
        pupil = _soft(1.0 - (du / 0.05) ** 2 - (dv / np.minimum(eye_open, 0.05)) ** 2, 0.3)
        dark = np.maximum(dark, 0.55 * eye + 0.4 * pupil)
        # Brow: a short thick segment above the eye; tilt > 0 lowers its inner (nose-side) end.
        inner = np.clip(0.5 - side * du / 0.3, 0.0, 1.0)
        brow_v = -0.42 - brow_raise + brow_tilt * (inner - 0.5) * 2.0
        brow = _soft(0.05 - np.abs(v - brow_v), 0.02) * _soft(0.17 - np.abs(du), 0.03)
        dark = np.maximum(dark, 0.8 * brow)
    # Mouth: a lip curve y = c * (x/width)^2 (smile when curve > 0) plus an opening ellipse.
    mu, mv = u, v - 0.45
    lip_v = -curve * ((mu / width) ** 2 - 0.5) + asym * mu / 0.2
    lip = _soft(0.035 - np.abs(mv - lip_v), 0.02) * _soft(width - np.abs(mu), 0.03)
    opening = _soft(1.0 - (mu / (width * 0.7)) ** 2 - (mv / np.maximum(mouth_open, 1e-3)) ** 2, 0.3)
    dark = np.maximum(dark, np.maximum(0.75 * lip, 0.85 * opening * (mouth_open > 0.01)))
    nose = _soft(0.025 - np.abs(u), 0.02) * _soft(0.12 - np.abs(v - 0.12), 0.04)
    dark = np.maximum(dark, 0.3 * nose)

    image = image * (1.0 - dark * head)
    contrast = rng.uniform(0.7, 1.2, (n, 1, 1)).astype(np.float32)
    image = (image - 0.5) * contrast + 0.5 + rng.uniform(-0.1, 0.1, (n, 1, 1)).astype(np.float32)
    image += rng.normal(0.0, 0.05, image.shape).astype(np.float32)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _soft(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """0 outside, 1 inside, a linear ramp of width `edge` (anti-aliased shapes)."""
    return np.clip(signed_distance / edge + 0.5, 0.0, 1.0)


def _pose_grid(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates (u right, v down, head about [-0.72, 0.72] x [-0.92, 0.92]) per pixel."""
    axis = (np.arange(IMAGE_SIDE, dtype=np.float32) + 0.5) / IMAGE_SIDE * 2.0 - 1.0
    y, x = np.meshgrid(axis, axis, indexing="ij")
    angle = rng.normal(0.0, 0.12, (n, 1, 1)).astype(np.float32)
    scale = rng.uniform(0.85, 1.1, (n, 1, 1)).astype(np.float32)
    shift_x, shift_y = (rng.normal(0.0, 0.05, (2, n, 1, 1))).astype(np.float32)
    x, y = (x - shift_x) / scale, (y - shift_y) / scale
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * x + sin * y, -sin * x + cos * y


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    axis = np.linspace(-1.0, 1.0, IMAGE_SIDE, dtype=np.float32)
    level = rng.uniform(0.1, 0.6, (n, 1, 1)).astype(np.float32)
    tilt_x, tilt_y = rng.uniform(-0.2, 0.2, (2, n, 1, 1)).astype(np.float32)
    return level + tilt_x * axis[None, None, :] + tilt_y * axis[None, :, None]


def to_csv_text(table: FerTable, header: str = "emotion,pixels,Usage") -> str:
    """The table in FER2013's CSV format (used for tests and for writing example files)."""
    names = [n.strip().lower() for n in header.split(",")]
    pixel_text = [" ".join(map(str, row)) for row in table.pixels.reshape(len(table.labels), -1)]
    fields = {
        "emotion": [str(int(y)) for y in table.labels],
        "pixels": pixel_text,
        "usage": [USAGES[u] for u in table.usage],
    }
    lines = [header] + [",".join(fields[c][i] for c in names) for i in range(len(table.labels))]
    return "\n".join(lines) + "\n"


__all__ = ["CLASS_NAMES", "class_counts", "draw_faces", "make_synthetic_fer", "to_csv_text"]
