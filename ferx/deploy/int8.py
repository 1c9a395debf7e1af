"""int8 only where it earns its place (issue 43): a quantised copy of an exported model, and the
gate that keeps it out of a release unless it is faster *and* gives the float model's label on
at least 99 % of the faces.

Both halves were measured before the deploy graph (2026-12-05, Intel Xeon): int8 made the
mini-Xception slower on every runtime tried and changed 2.5-4 % of the labels. The gate stays so
that a later network or runtime is judged by the same rule, and bench/bench_int8.py applies it.
The faces the gate reads are the choosing split's (PublicTest): like every choice in ferx, it is
made there; PrivateTest's agreement is reported beside it.

Needs the `onnx` package (the pipeline extra brings it) to quantise; the gate itself is numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferx.onnx_model import INPUT, META_KEY

MIN_AGREEMENT = 0.99  # the bar: the float model's label on 99 % of the faces
MODES = ("dynamic", "static")  # ONNX Runtime's dynamic quantisation; static QDQ, calibrated


@dataclass(frozen=True)
class Int8Verdict:
    """Whether an int8 copy may replace the float model, and why (one line)."""

    accepted: bool
    agreement: float  # fraction of the faces given the float model's label
    speedup: float  # int8 faces/s over the float model's, measured in one run
    reason: str


def judge_int8(
    float_labels: np.ndarray,
    int8_labels: np.ndarray,
    float_faces_per_s: float,
    int8_faces_per_s: float,
    min_agreement: float = MIN_AGREEMENT,
) -> Int8Verdict:
    """The gate: accepted only when the int8 model is faster and agrees on >= min_agreement of
    the faces (both conditions; the reason names every one that failed)."""
    float_labels, int8_labels = np.asarray(float_labels), np.asarray(int8_labels)
    if float_labels.shape != int8_labels.shape or float_labels.ndim != 1 or not len(float_labels):
        raise ValueError(
            f"judge_int8: expected two label vectors of one length, got shapes "
            f"{float_labels.shape} and {int8_labels.shape}"
        )
    if float_faces_per_s <= 0 or int8_faces_per_s <= 0:
        raise ValueError("judge_int8: faces/s must be positive")
    agreement = float(np.mean(float_labels == int8_labels))
    speedup = int8_faces_per_s / float_faces_per_s
    failed = []
    if agreement < min_agreement:
        failed.append(
            f"same label on {100 * agreement:.2f} % of the faces, under {100 * min_agreement:g} %"
        )
    if speedup <= 1.0:
        failed.append(f"{speedup:.2f}x the float model's faces/s, not faster")
    if failed:
        return Int8Verdict(False, agreement, speedup, "refused: " + "; ".join(failed))
    return Int8Verdict(
        True,
        agreement,
        speedup,
        f"accepted: {speedup:.2f}x faster, same label on {100 * agreement:.2f} % of the faces",
    )


class _Faces:
    """ONNX Runtime's calibration reader over raw faces (N x 48 x 48, 0..255), a batch a call."""

    def __init__(self, faces: np.ndarray, batch: int = 64) -> None:
        x = np.asarray(faces, dtype=np.float32)
        self._batches = iter([x[i : i + batch, None] for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT: batch}


def quantize(
    model_path: Path, out_path: Path, mode: str, calibration: np.ndarray | None = None
) -> Path:
    """An int8 copy of an exported ferx model, with its metadata (so OnnxModel opens it),
    written atomically: `dynamic` quantises the weights and each activation on the fly;
    `static` writes QDQ nodes with activation ranges from `calibration` faces (Training
    faces: never a test split)."""
    if mode not in MODES:
        raise ValueError(f"quantize: mode must be one of {MODES}, got {mode!r}")
    if mode == "static" and (calibration is None or not len(calibration)):
        raise ValueError("quantize: static quantisation needs calibration faces")
    if Path(out_path).resolve() == Path(model_path).resolve():
        raise ValueError(f"quantize: {out_path} is the model itself; write the copy elsewhere")
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from ferx.atomic import write_atomic

    source = onnx.load(str(model_path))
    meta = {p.key: p.value for p in source.metadata_props}
    if META_KEY not in meta:
        raise ValueError(f"quantize: {model_path} has no '{META_KEY}' metadata: not a ferx export")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "int8.onnx"
        if mode == "dynamic":
            quantize_dynamic(str(model_path), str(raw), weight_type=QuantType.QInt8)
        else:
            quantize_static(
                str(model_path),
                str(raw),
                _Faces(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        quantised = onnx.load(str(raw))
    # the network and classes, plus a note of what was done to it
    meta[META_KEY] = json.dumps({**json.loads(meta[META_KEY]), "int8": mode}, sort_keys=True)
    del quantised.metadata_props[:]
    for key, value in meta.items():
        quantised.metadata_props.add(key=key, value=value)
    write_atomic(out_path, lambda tmp: onnx.save(quantised, str(tmp)), suffix=".onnx")
    return Path(out_path)
