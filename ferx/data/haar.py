"""OpenCV's frontal-face Haar cascade, run with numpy: prediction finds faces without OpenCV.

The cascade is OpenCV's `haarcascade_frontalface_default.xml` (Rainer Lienhart's 24x24 stump
cascade, Intel's BSD-style licence in its header), shipped beside this file. `detect` follows
`cv2.CascadeClassifier.detectMultiScale` (OpenCV 4): the same scales (`scale_factor` powers
from 1; windows outside [min_size, image] skipped), each image shrunk with bilinear
interpolation, a 24x24 window moved 2 pixels at a time below scale 2 and 1 from there on (and
one more after a window the first stage rejects), windows whose inner 22x22 pixels vary by
a standard deviation of 10 or less rejected, every stage's stumps on variance-normalised
Haar features, and the hits grouped as `cv2.groupRectangles` does (eps 0.2, more than
`min_neighbors` hits per group, small groups inside larger ones dropped). Its resize is not
OpenCV's fixed-point one, so a box can differ from OpenCV's by a pixel or two; tests compare
the two where OpenCV is installed.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CASCADE_FILE = Path(__file__).with_name("haarcascade_frontalface_default.xml")
WINDOW = 24  # the cascade's window side
GROUP_EPS = 0.2  # cv2's grouping tolerance
THRESHOLD_EPS = np.float32(1e-5)  # cv2 lowers every stage threshold by this
GRID_STAGES = 3  # stages run on every window at once; later ones on the survivors only


@dataclass(frozen=True)
class Stage:
    threshold: np.float32
    rects: np.ndarray  # (stumps, 3, 4) x, y, w, h of each stump's feature rectangles
    weights: np.ndarray  # (stumps, 3) float32, 0 for an unused third rectangle
    thresholds: np.ndarray  # (stumps,) float32
    left: np.ndarray  # (stumps,) leaf value when the feature is below the threshold
    right: np.ndarray


def _numbers(node: ET.Element | None) -> list[float]:
    return [float(v) for v in (node.text or "").split()] if node is not None else []


@functools.cache
def load_cascade(path: Path = CASCADE_FILE) -> tuple[Stage, ...]:
    """The cascade's stages, read once per process (a video asks on every frame)."""
    root = ET.parse(path).getroot().find("cascade")
    if root is None or root.findtext("featureType", "").strip() != "HAAR":
        raise ValueError(f"{path}: not an OpenCV HAAR cascade")
    features = []
    for feature in root.iterfind("features/_"):
        rects = [_numbers(r) for r in feature.iterfind("rects/_")]
        if feature.findtext("tilted", "0").strip() not in ("0", ""):
            raise ValueError(f"{path}: tilted features are not supported")
        rects += [[0, 0, 0, 0, 0.0]] * (3 - len(rects))
        features.append(rects)
    table = np.array(features, dtype=np.float64)  # (features, 3, 5)
    stages = []
    for stage in root.iterfind("stages/_"):
        stumps = [
            (_numbers(weak.find("internalNodes")), _numbers(weak.find("leafValues")))
            for weak in stage.iterfind("weakClassifiers/_")
        ]
        if any(len(nodes) != 4 or len(leaves) != 2 for nodes, leaves in stumps):
            raise ValueError(f"{path}: only stump cascades are supported")
        index = np.array([int(nodes[2]) for nodes, _ in stumps])
        stages.append(
            Stage(
                np.float32(float(stage.findtext("stageThreshold"))) - THRESHOLD_EPS,
                table[index, :, :4].astype(np.int64),
                table[index, :, 4].astype(np.float32),
                np.array([nodes[3] for nodes, _ in stumps], dtype=np.float32),
                np.array([leaves[0] for _, leaves in stumps], dtype=np.float32),
                np.array([leaves[1] for _, leaves in stumps], dtype=np.float32),
            )
        )
    return tuple(stages)


def _round(value: float) -> int:
    return int(np.rint(value))  # cvRound: to nearest, halves to even


def scales(image_size: tuple[int, int], scale_factor: float, min_size: int) -> list[np.float32]:
    """The window scales cv2 scans: powers of scale_factor whose window fits the image (width,
    height), without those below min_size."""
    if not scale_factor > 1:
        raise ValueError(f"scale_factor must be above 1, got {scale_factor}")
    found, factor = [], 1.0
    while True:
        side = _round(WINDOW * factor)
        if side > image_size[0] or side > image_size[1]:
            return found
        if side >= min_size:
            found.append(np.float32(factor))
        factor *= scale_factor


def shrink(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize to (width, height), pixel centres aligned, borders replicated, as
    the cascade's cv2.resize (INTER_LINEAR_EXACT) computes it, in floating point rather than
    its fixed point: a pixel may differ by one grey level."""
    if (width, height) == (gray.shape[1], gray.shape[0]):
        return gray

    def taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        where = (np.arange(dst) + 0.5) * (src / dst) - 0.5
        low = np.floor(where).astype(np.int64)
        frac = where - low
        frac[low < 0], low[low < 0] = 0.0, 0
        last = low >= src - 1
        frac[last], low[last] = 0.0, src - 1
        return low, np.minimum(low + 1, src - 1), frac

    y0, y1, fy = taps(gray.shape[0], height)
    x0, x1, fx = taps(gray.shape[1], width)
    rows = gray[y0].astype(np.float64) * (1 - fy)[:, None] + gray[y1] * fy[:, None]
    out = rows[:, x0] * (1 - fx) + rows[:, x1] * fx
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _integral(image: np.ndarray) -> np.ndarray:
    """(h + 1, w + 1) sums of the pixels above and left of each corner."""
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = image.astype(np.int64).cumsum(0).cumsum(1)
    return table


def _rect_sums(flat: np.ndarray, stride: int, corners: np.ndarray, rects: np.ndarray):
    """Sums over rects (..., 4: x, y, w, h) of every window whose top-left corner in the
    flattened integral table is `corners` (windows,): (windows, ...)."""
    x, y, w, h = (rects[..., i] for i in range(4))
    top_left = (y * stride + x)[None]
    base = corners.reshape((-1,) + (1,) * rects[..., 0].ndim)
    a = flat[base + top_left]
    b = flat[base + top_left + w[None]]
    c = flat[base + top_left + (h * stride)[None]]
    d = flat[base + top_left + (h * stride + w)[None]]
    return a - b - c + d


def _stage_passes(
    stage: Stage, flat: np.ndarray, stride: int, corners: np.ndarray, norm: np.ndarray
) -> np.ndarray:
    sums = _rect_sums(flat, stride, corners, stage.rects).astype(np.float32)  # (n, stumps, 3)
    values = (sums * stage.weights[None]).sum(-1, dtype=np.float32) * norm[:, None]
    leaves = np.where(values < stage.thresholds[None], stage.left[None], stage.right[None])
    return leaves.astype(np.float64).sum(1) >= stage.threshold


def _grid_sums(table: np.ndarray, rect: np.ndarray, shape: tuple[int, int], step: int):
    """Sums over rect (x, y, w, h) of every window of a grid (rows x columns of windows
    `step` pixels apart from the corner), as strided views of the integral table."""
    x, y, w, h = (int(v) for v in rect)
    rows, columns = shape

    def at(dy: int, dx: int) -> np.ndarray:
        down = slice(dy, dy + (rows - 1) * step + 1, step)
        return table[down, dx : dx + (columns - 1) * step + 1 : step]

    return at(y, x) - at(y, x + w) - at(y + h, x) + at(y + h, x + w)


def _grid_stage_passes(
    stage: Stage, table: np.ndarray, shape: tuple[int, int], step: int, norm: np.ndarray
) -> np.ndarray:
    """_stage_passes for every window of the grid at once (the first stages see nearly all
    windows: slices of the table cost far less than gathering each window's corners)."""
    total = np.zeros(shape)
    for t in range(len(stage.thresholds)):
        value = np.zeros(shape, dtype=np.float32)
        for r in range(3):
            if stage.weights[t, r] != 0:
                sums = _grid_sums(table, stage.rects[t, r], shape, step).astype(np.float32)
                value = value + stage.weights[t, r] * sums
        value = value * norm
        total += np.where(value < stage.thresholds[t], stage.left[t], stage.right[t])
    return total >= stage.threshold


def visited(first_stage_rejects: np.ndarray) -> np.ndarray:
    """Which windows of each row (rows x windows) cv2 evaluates: it steps over the window
    after each one the first stage rejects. So a window is skipped when the one before it was
    visited and rejected, that is (by induction along the row) when an odd number of rejected
    windows run up to it: a run of rejects is visited every other window."""
    rejects = np.asarray(first_stage_rejects, dtype=bool)
    n = rejects.shape[-1]
    index = np.broadcast_to(np.arange(1, n + 1), rejects.shape)
    last_kept = np.maximum.accumulate(np.where(rejects, 0, index), axis=-1)
    run = index - last_kept  # rejects in a row ending at each window (0 where it is kept)
    before = np.zeros_like(run)
    before[..., 1:] = run[..., :-1]  # ... ending just before each window
    return before % 2 == 0


def _windows_at(gray: np.ndarray, scale: np.float32, stages: tuple[Stage, ...]) -> list[tuple]:
    """The (x, y, side, side) boxes, in the image's pixels, that pass every stage at `scale`."""
    height, width = gray.shape
    small = shrink(gray, _round(np.float32(width) / scale), _round(np.float32(height) / scale))
    sums, squares = _integral(small), _integral(small.astype(np.int64) ** 2)
    stride = sums.shape[1]
    step = 1 if scale >= 2 else 2
    ys = np.arange(0, small.shape[0] + 1 - WINDOW, step)
    xs = np.arange(0, small.shape[1] + 1 - WINDOW, step)
    if not len(ys) or not len(xs):
        return []
    corners = (ys[:, None] * stride + xs[None, :]).ravel()
    inner = np.array([1, 1, WINDOW - 2, WINDOW - 2])
    area = float((WINDOW - 2) ** 2)
    total = _rect_sums(sums.ravel(), stride, corners, inner).astype(np.float64)
    total_sq = _rect_sums(squares.ravel(), stride, corners, inner).astype(np.float64)
    spread = area * total_sq - total * total
    norm = np.ones(len(corners), dtype=np.float32)
    varied = spread > 0
    norm[varied] = (1.0 / np.sqrt(spread[varied])).astype(np.float32)
    varied &= area * norm.astype(np.float64) < 0.1  # flat windows: rejected, no step over

    shape = (len(ys), len(xs))
    grid_norm = norm.reshape(shape)
    passes = [_grid_stage_passes(s, sums, shape, step, grid_norm) for s in stages[:GRID_STAGES]]
    first = varied.reshape(shape) & passes[0]
    rejected_first = varied.reshape(shape) & ~passes[0]
    alive_grid = visited(rejected_first) & first
    for passed in passes[1:]:
        alive_grid &= passed
    alive = np.flatnonzero(alive_grid)
    flat = sums.ravel()
    for stage in stages[GRID_STAGES:]:
        if not len(alive):
            return []
        alive = alive[_stage_passes(stage, flat, stride, corners[alive], norm[alive])]
    side = _round(np.float32(WINDOW) * scale)  # cv2: in float32
    found_y, found_x = np.divmod(alive, len(xs))
    return [  # cv2 multiplies in float32
        (_round(np.float32(xs[i]) * scale), _round(np.float32(ys[j]) * scale), side, side)
        for j, i in zip(found_y, found_x, strict=True)
    ]


def _similar(a: tuple, b: tuple, eps: float) -> bool:
    delta = eps * (min(a[2], b[2]) + min(a[3], b[3])) * 0.5
    return (
        abs(a[0] - b[0]) <= delta
        and abs(a[1] - b[1]) <= delta
        and abs(a[0] + a[2] - b[0] - b[2]) <= delta
        and abs(a[1] + a[3] - b[1] - b[3]) <= delta
    )


def group(boxes: list[tuple], min_neighbors: int, eps: float = GROUP_EPS) -> list[tuple]:
    """cv2.groupRectangles: boxes joined into groups of similar ones (connected through any
    chain of similar pairs), each group's average kept when it has more than min_neighbors
    boxes and no larger kept group holds it."""
    if min_neighbors <= 0 or not boxes:
        return list(boxes)
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i):
            if _similar(boxes[i], boxes[j], eps):
                parent[root(i)] = root(j)
    members: dict[int, list[tuple]] = {}
    for i, box in enumerate(boxes):
        members.setdefault(root(i), []).append(box)
    averaged = []
    for found in members.values():
        share = np.float32(1.0) / np.float32(len(found))
        summed = np.array(found, dtype=np.int64).sum(0)
        averaged.append((tuple(int(np.rint(np.float32(v) * share)) for v in summed), len(found)))
    kept = []
    for i, (box, n) in enumerate(averaged):
        if n <= min_neighbors:
            continue
        inside = False
        for j, (other, m) in enumerate(averaged):
            if j == i or m <= min_neighbors:
                continue
            dx, dy = _round(other[2] * eps), _round(other[3] * eps)
            if (
                box[0] >= other[0] - dx
                and box[1] >= other[1] - dy
                and box[0] + box[2] <= other[0] + other[2] + dx
                and box[1] + box[3] <= other[1] + other[3] + dy
                and (m > max(3, n) or n < 3)
            ):
                inside = True
                break
        if not inside:
            kept.append(box)
    return kept


def detect(
    gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3, min_size: int = 0
) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the faces in a 2-D uint8 image, as cv2's detectMultiScale finds them."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {gray.dtype} of shape {gray.shape}")
    stages = load_cascade()
    size = (gray.shape[1], gray.shape[0])
    boxes = [
        box
        for scale in scales(size, scale_factor, min_size)
        for box in _windows_at(gray, scale, stages)
    ]
    return group(boxes, min_neighbors)
