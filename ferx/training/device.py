"""Where a training runs: the device runtime.device asks for, and on CUDA the settings under
which a run repeats itself."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ferx.errors import UserError


class DeviceError(UserError):
    """The device or precision asked for cannot be had on this machine."""


CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's deterministic workspace, unless the user set one


@contextmanager
def deterministic_cuda() -> Iterator[None]:
    """Settings under which a CUDA run repeats itself bit for bit (PyTorch's reproducibility
    notes): deterministic algorithms (an op without one raises instead of varying), cuDNN
    without autotuning, and cuBLAS's fixed workspace (read when cuBLAS starts: set first).
    Process-wide switches, so they are put back as found when the run ends: a caller that
    trains and then does something else (a notebook, the test suite) keeps its own settings,
    and its own environment."""
    set_here = "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    found = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(found[0], warn_only=found[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = found[2:]
        if set_here:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def choose_device(wanted: str) -> torch.device:
    if wanted == "cuda" and not torch.cuda.is_available():
        raise DeviceError("runtime.device: cuda was asked for but no CUDA device is available")
    if wanted == "cpu" or (wanted == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")
