"""`ferx-predict` on video files: every frame's faces boxed and labelled in an output video,
and a timeline CSV with one row per frame and face.

Faces are found with the same Haar cascade as in photos, cropped with the same margin and
classified like the training data. `every` > 1 classifies every Nth frame only and carries
its boxes and labels over the frames between (the CSV marks those rows `carried`).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ferx.atomic import atomic_path, write_atomic
from ferx.data.faces import crop_with_margin, find_faces, to_face_array
from ferx.errors import UserError
from ferx.labels import CLASS_NAMES, IMAGE_SIDE

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"}
# the codec each output container gets; these ship with OpenCV's own FFmpeg
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
CSV_COLUMNS = (
    *("frame", "time_s", "face", "x", "y", "width", "height", "predicted", "probability"),
    "carried",
    *CLASS_NAMES,
)
# BGR, one per class, readable on faces and on grey
COLORS = [(40, 40, 230), (40, 140, 40), (180, 60, 160), (0, 200, 255), (200, 110, 30),
          (0, 160, 255), (200, 200, 200)]  # fmt: skip


class VideoError(UserError):
    """A video that cannot be read, holds no face, or an output that cannot be written."""


@dataclass
class VideoSummary:
    frames: int
    classified_frames: int
    rows: int
    fps: float
    counts: dict[str, int]  # predicted label -> face rows


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _check_writable(path: Path | None) -> None:
    if path is None:
        return
    if not path.parent.is_dir():
        raise VideoError(f"{path}: cannot write there (folder {path.parent} does not exist)")
    if not os.access(path.parent, os.W_OK) or path.is_dir():
        raise VideoError(f"{path}: cannot write there (not a writable file path)")


def _frames(first: np.ndarray, capture) -> Iterator[np.ndarray]:
    """The frame already read, then the rest until the decoder stops."""
    yield first
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def _draw(frame: np.ndarray, faces: list[tuple[tuple[int, ...], np.ndarray]]) -> None:
    import cv2

    for (x, y, w, h), probabilities in faces:
        k = int(probabilities.argmax())
        cv2.rectangle(frame, (x, y), (x + w, y + h), COLORS[k], 2)
        text = f"{CLASS_NAMES[k]} {probabilities[k]:.2f}"
        scale = max(0.4, w / 200)
        cv2.putText(frame, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, COLORS[k], 2)


def annotate_video(
    path: Path,
    classify: Callable[[np.ndarray], np.ndarray],
    video_out: Path | None = None,
    csv_out: Path | None = None,
    every: int = 1,
    margin: float = 0.2,
    progress: bool = True,
) -> VideoSummary:
    """Find, classify and (optionally) draw the faces of every frame of `path`.

    `classify` maps uint8 faces (N x 48 x 48) to class probabilities (N x 7). Outputs are
    written to temp files and renamed at the end, so a failure leaves none behind."""
    import cv2
    from tqdm import tqdm

    if every < 1:
        raise VideoError(f"--every must be 1 or more, got {every}")
    if not path.exists():
        raise VideoError(f"{path}: not found")
    for out in (video_out, csv_out):
        _check_writable(out)
    if video_out is not None and video_out.suffix.lower() not in FOURCC:
        raise VideoError(
            f"{video_out}: cannot write a {video_out.suffix or 'suffix-less'} video; use one of "
            f"{', '.join(sorted(FOURCC))}"
        )
    capture = cv2.VideoCapture(str(path))
    try:
        ok, first = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            raise VideoError(f"{path}: not a readable video (no frame could be decoded)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        height, width = first.shape[:2]
        with ExitStack() as stack:
            writer = None
            if video_out is not None:
                tmp = stack.enter_context(atomic_path(video_out, suffix=video_out.suffix))
                fourcc = cv2.VideoWriter_fourcc(*FOURCC[video_out.suffix.lower()])
                writer = cv2.VideoWriter(str(tmp), fourcc, fps, (width, height))
                if not writer.isOpened():
                    raise VideoError(f"{video_out}: OpenCV cannot write this video")
                stack.callback(writer.release)  # released before the rename
            bar = stack.enter_context(
                tqdm(total=total, unit="frame", disable=not progress, file=sys.stderr)
            )
            rows, current, classified, n = [], [], 0, 0
            for n, frame in enumerate(_frames(first, capture)):
                if n % every == 0:
                    current = _classify_frame(frame, classify, margin)
                    classified += 1
                for face, (box, probabilities) in enumerate(current):
                    rows.append(_row(n, n / fps, face, box, probabilities, n % every != 0))
                if writer is not None:
                    _draw(frame, current)
                    writer.write(frame)
                bar.update(1)
            frames = n + 1
            if not rows:
                raise VideoError(
                    f"{path}: no face found in any of its {frames} frames (nothing written)"
                )
            if csv_out is not None:
                write_atomic(csv_out, lambda p: p.write_text(_csv_text(rows)), suffix=".csv")
    finally:
        capture.release()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["predicted"]] = counts.get(row["predicted"], 0) + 1
    return VideoSummary(frames, classified, len(rows), fps, counts)


def _classify_frame(
    frame: np.ndarray, classify: Callable[[np.ndarray], np.ndarray], margin: float
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    boxes = find_faces(gray)
    if not boxes:
        return []
    faces = np.stack(
        [to_face_array(Image.fromarray(crop_with_margin(gray, box, margin))) for box in boxes]
    ).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return list(zip(boxes, classify(faces), strict=True))


def _row(frame, time_s, face, box, probabilities, carried) -> dict:
    k = int(probabilities.argmax())
    x, y, w, h = box
    return {
        "frame": frame,
        "time_s": round(time_s, 4),
        "face": face,
        "x": x,
        "y": y,
        "width": w,
        "height": h,
        "predicted": CLASS_NAMES[k],
        "probability": round(float(probabilities[k]), 4),
        "carried": int(carried),
        **{n: round(float(v), 4) for n, v in zip(CLASS_NAMES, probabilities, strict=True)},
    }


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
