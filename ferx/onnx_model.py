"""A ferx model exported to ONNX, run by ONNX Runtime: what prediction and the cost stage use.

Top level, beside the layers, because both analysis (cost times it) and deploy (predict,
video) run it, and because it needs no torch (numpy and onnxruntime, imported when a model
is opened): ferx/models/ imports torch on import. The file takes raw pixels (float32, 0..255,
N x 1 x 48 x 48) and gives the 7 logits; its metadata names the network and the classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ferx.errors import UserError
from ferx.labels import CLASS_NAMES

INPUT, OUTPUT = "pixels", "logits"
META_KEY = "ferx"  # the metadata entry holding {"arch", "class_names", **training meta}


class OnnxModelError(UserError):
    """An ONNX file is missing, unreadable, not a ferx model, or a network would not export."""


class OnnxModel:
    """An exported ferx model in ONNX Runtime: `logits(images)` like `predict_logits`."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise OnnxModelError(f"{self.path}: not found")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not the user's to fix
        # ALL is ONNX Runtime's default too; set here (and pinned by a test) because BASIC
        # cost up to 44 % of the speed in one run (issue 43) and BENCHMARKS measure ALL.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise OnnxModelError(f"{self.path}: not a loadable ONNX model ({first})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        try:
            meta = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise OnnxModelError(
                f"{self.path}: its '{META_KEY}' metadata is not valid JSON ({exc.msg}, "
                f"character {exc.pos}); export the model again with `dvc repro export`"
            ) from None
        self.meta: dict[str, Any] = meta if isinstance(meta, dict) else {}
        if self.meta.get("class_names") != list(CLASS_NAMES):
            raise OnnxModelError(
                f"{self.path}: not a ferx ONNX model (no class names "
                f"{list(CLASS_NAMES)} in its metadata; export one with `dvc repro export`)"
            )

    def logits(self, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Logits (N x 7, float32) for faces as N x 48 x 48 or N x 1 x 48 x 48, 0..255."""
        x = np.asarray(images, dtype=np.float32)
        if x.ndim == 3:
            x = x[:, None]
        out = [
            self.session.run([OUTPUT], {INPUT: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out) if out else np.empty((0, len(CLASS_NAMES)), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
