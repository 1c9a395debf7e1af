"""Saving and loading models and training state: atomic writes, weights-only loads."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ferx.atomic import write_atomic
from ferx.errors import UserError
from ferx.labels import CLASS_NAMES
from ferx.models import ModelConfig, build_model

MODEL_FORMAT = "ferx-model/2"
# read too: files written when the mini-Xception was the only network (config without arch)
READABLE_FORMATS = (MODEL_FORMAT, "ferx-mini-xception/1")
# weights saved before MiniXception.modules_ (a near-homonym of nn.Module.modules()) was
# renamed residual_modules: old prefix -> new
RENAMED_PREFIXES = {"modules_.": "residual_modules."}


class CheckpointError(UserError):
    """A model or state file is missing, unreadable, or does not fit what is asked of it."""


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save to a temp file, then rename: a kill never leaves half a checkpoint."""
    write_atomic(path, lambda tmp: torch.save(state, tmp), suffix=".pt")


def load_state(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True (never runs code from the file); clear errors."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint ({reason})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(state).__name__}")
    return state


def save_model(path: str | Path, model: torch.nn.Module, **meta: Any) -> None:
    """The weights plus what is needed to use them: architecture, class names, metadata."""
    save_state(
        path,
        {
            "format": MODEL_FORMAT,
            "config": model.config.to_dict(),
            "class_names": list(CLASS_NAMES),
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "meta": meta,
        },
    )


def _renamed(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with the tensor names of older files brought up to date."""
    out = {}
    for name, tensor in state_dict.items():
        for old, new in RENAMED_PREFIXES.items():
            if name.startswith(old):
                name = new + name.removeprefix(old)
        out[name] = tensor
    return out


def load_model(
    path: str | Path, expect_arch: str | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a saved model in eval mode from the file alone (it records its network);
    refuse files of another kind, class set or, given `expect_arch`, another network."""
    state = load_state(path)
    if state.get("format") not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path}: not a ferx model file (format {state.get('format')!r}, "
            f"expected {MODEL_FORMAT!r})"
        )
    if tuple(state.get("class_names", ())) != CLASS_NAMES:
        raise CheckpointError(
            f"{path}: model predicts classes {state.get('class_names')}, expected the "
            f"{len(CLASS_NAMES)} FER2013 classes {list(CLASS_NAMES)}"
        )
    try:
        config = ModelConfig.from_dict(state["config"])
        model = build_model(config)
        model.load_state_dict(_renamed(state["state_dict"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        arch = state.get("config", {}).get("arch", "mini_xception")
        raise CheckpointError(f"{path}: weights do not fit the {arch} network ({first})") from None
    if expect_arch is not None and config.arch != expect_arch:
        raise CheckpointError(
            f"{path}: holds a {config.arch} network, but params.yaml asks for {expect_arch} "
            f"(train.model.arch); rerun train (dvc repro) or set train.model.arch: {config.arch}"
        )
    model.eval()
    return model, state.get("meta", {})
