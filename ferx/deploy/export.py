"""ONNX: the model users deploy. Export a trained network to ONNX and check it against PyTorch
(running it: ferx/onnx_model.py, which needs no torch).

The ONNX file takes what the PyTorch model takes, raw pixels (float32, 0..255, N x 1 x 48 x 48,
any N) and gives the 7 logits: the normalisation is inside the graph, so a deployment needs
no preprocessing code of ours. What is exported is the network's deploy form (graph.py: 1x1
layers as convolutions, BatchNorm folded), checked against the trained model itself. The
file also records the network, the data source and the class names (ONNX metadata), like a
`.pt` model file does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ferx.atomic import write_atomic
from ferx.labels import CLASS_NAMES, IMAGE_SIDE
from ferx.onnx_model import INPUT, META_KEY, OUTPUT, OnnxModel, OnnxModelError

__all__ = ["OnnxModel", "OnnxModelError", "export_checked", "export_onnx", "parity"]

OPSET = 18  # what torch's exporter and onnxruntime 1.2x agree on for every network here


def export_onnx(model, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write `model` (a ferx network) as ONNX with a dynamic batch, atomically: its deploy form
    (ferx/deploy/graph.py), a copy, so the caller's model keeps its mode and layout."""
    import torch

    from ferx.deploy.graph import deploy_form

    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it; say so before it fails)
    except ImportError as exc:
        raise OnnxModelError(
            f"ONNX export needs the onnx and onnxscript packages ({exc}); reinstall with "
            '`pip install -e ".[pipeline]"`'
        ) from None
    arch = getattr(getattr(model, "config", None), "arch", type(model).__name__)
    example = torch.zeros(2, 1, IMAGE_SIDE, IMAGE_SIDE)
    deployed = deploy_form(model)
    try:
        # torch's own exporter (torch.export + onnxscript): the TorchScript one is deprecated
        program = torch.onnx.export(
            deployed,
            (example,),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            report=False,
        )
        proto = program.model_proto
    except torch.onnx.errors.OnnxExporterError as exc:  # the network, not the installation
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxModelError(f"the {arch} network cannot be exported to ONNX: {first}") from exc
    info = {"arch": arch, "class_names": list(CLASS_NAMES), **(meta or {})}
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(info, sort_keys=True)
    write_atomic(path, lambda tmp: onnx.save_model(proto, str(tmp)), suffix=".onnx")


def export_checked(
    model,
    target: str | Path,
    images: np.ndarray,
    tolerance: float,
    meta: dict[str, Any] | None = None,
    batch_size: int = 128,
    threads: int = 0,
) -> dict:
    """Export `model`, check ONNX Runtime against PyTorch on `images`, and only then put the
    file at `target` (a failed check leaves no file there); the check's figures."""
    target = Path(target)
    target.unlink(missing_ok=True)  # never an earlier export beside a failed one
    unchecked = target.with_name(f".{target.stem}.unchecked{target.suffix}")
    try:
        export_onnx(model, unchecked, meta)
        check = parity(model, OnnxModel(unchecked, threads), images, batch_size)
        if check["max_abs_logit_diff"] > tolerance:
            raise OnnxModelError(
                f"{target}: ONNX Runtime's logits differ from PyTorch's by up to "
                f"{check['max_abs_logit_diff']:.2e} (> {tolerance}) on {check['n_images']} "
                "faces; nothing written"
            )
        unchecked.replace(target)
    finally:
        unchecked.unlink(missing_ok=True)
    return check


def parity(model, onnx_model: OnnxModel, images: np.ndarray, batch_size: int = 128) -> dict:
    """How far ONNX Runtime's logits are from PyTorch's on `images` (N x 48 x 48 uint8)."""
    import torch

    from ferx.models.inference import predict_logits

    reference = predict_logits(model, torch.from_numpy(images).unsqueeze(1), batch_size).numpy()
    ours = onnx_model.logits(images, batch_size)
    return {
        "n_images": len(images),
        "max_abs_logit_diff": float(np.abs(ours - reference).max()) if len(images) else 0.0,
        "same_predictions": float((ours.argmax(1) == reference.argmax(1)).mean())
        if len(images)
        else 1.0,
    }
