"""Resuming a killed training: the fingerprint a checkpoint must match, and the state loaded.

A checkpoint is resumed only by the very run that wrote it: its fingerprint is one sha256
per part (params, the training code, every byte of the data, the exact initial weights, the
run's own settings), so a mismatch says which part changed.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ferx.models.checkpoint import load_state
from ferx.params import TrainParams
from ferx.training.source_code import PACKAGE_DIR, import_closure, relative_name

if TYPE_CHECKING:
    from ferx.training.run_spec import Split


def fingerprint(
    params: TrainParams,
    splits: dict[str, Split],
    initial_state: dict[str, torch.Tensor],
    extra: dict[str, Any],
) -> dict[str, str]:
    """What a resumable checkpoint must match, as one sha256 per part so a mismatch can say
    which part changed: the params, the training code, every byte of the data, the exact
    initial weights, and the run's own settings (class weights, what learns, selection)."""
    data = hashlib.sha256()
    for name in sorted(splits):
        data.update(name.encode())
        data.update(splits[name].x.numpy().tobytes())
        data.update(splits[name].y.numpy().tobytes())
    return {
        "params": _sha256_json(params.model_dump()),
        "code": source_digest(training_sources()),
        "data": data.hexdigest(),
        "initial weights": state_digest(initial_state),
        "run settings": _sha256_json(extra),
    }


def training_sources() -> list[Path]:
    """The ferx modules a training run executes (the import closure of ferx.training.run and
    ferx.training.class_weights): editing any of them makes an old checkpoint another run's."""
    return import_closure(["ferx.training.run", "ferx.training.class_weights"])


def source_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = relative_name(path) if path.is_relative_to(PACKAGE_DIR.parent) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor's name, dtype, shape and bytes: equal only for equal weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().reshape(-1).contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(state[name].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def resume_or_start(spec, key, model, optimizer, scheduler) -> dict[str, Any]:
    """Load an unfinished checkpoint of this very run, or start a fresh state. Anything else
    (another run's, a finished one, an unreadable one) starts fresh with one line saying why."""
    fresh = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if spec.state_path.exists():
        reason = _resume(spec, key, model, optimizer, scheduler)
        if isinstance(reason, dict):
            return reason
        print(f"{spec.name}: not resuming {spec.state_path}: {reason}; starting fresh")
        model.load_state_dict(fresh)
    return {
        "fingerprint": key,
        "finished": False,
        "epoch": 0,
        "seconds": 0.0,
        "best_score": -math.inf,
        "best_epoch": 0,
        "best_state": fresh,
        "stale": 0,
        "history": [],
    }


def _resume(spec, key, model, optimizer, scheduler) -> dict[str, Any] | str:
    """The saved state if it continues this run, else the reason it does not."""
    try:
        saved = load_state(spec.state_path)
    except ValueError as exc:
        return f"unreadable ({exc})"
    theirs = saved.get("fingerprint")
    if not isinstance(theirs, dict) or set(theirs) != set(key):
        return "written by an older version of ferx"
    changed = [part for part in key if theirs[part] != key[part]]
    if changed:
        return f"another run's ({', '.join(changed)} changed)"
    if saved.get("finished"):
        return "that run finished"
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        return f"its weights do not fit ({str(exc).strip().splitlines()[0]})"
    print(f"{spec.name}: resuming after epoch {saved['epoch']} from {spec.state_path}")
    return saved
