"""The CUDA path: autocast as train.precision asks, deterministic settings, runs that repeat
themselves. Tests that need a GPU skip where there is none (bench/gpu_check.py runs the rest
of the check on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from ferx.models import ModelConfig, build_model
from ferx.params import RuntimeParams, TrainParams
from ferx.training.loop import AUTOCAST_DTYPES, RunSpec, fit
from tests.conftest import tiny_splits

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device here")
SPLITS = tiny_splits(160, seed=0)


def _fit(tmp_path, precision: str, device: str, name: str = "run"):
    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(8, 16)))
    params = TrainParams(epochs=2, batch_size=32, precision=precision)
    spec = RunSpec("train", tmp_path / f"{name}.pt")
    return fit(model, SPLITS, params, spec, RuntimeParams(device=device))


def test_precision_names_its_autocast_dtype():
    assert {"bf16": torch.bfloat16, "fp16": torch.float16} == AUTOCAST_DTYPES
    assert "fp32" not in AUTOCAST_DTYPES  # fp32: no autocast at all


def test_fp16_on_a_cpu_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"train.precision: fp16 needs a CUDA device"):
        _fit(tmp_path, "fp16", "cpu")
    assert not (tmp_path / "run.pt").exists()  # refused before any work


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_cuda_run_repeats_itself_bit_for_bit(tmp_path, precision):
    first = _fit(tmp_path, precision, "cuda", "a")
    second = _fit(tmp_path, precision, "cuda", "b")
    assert first.history == second.history and first.best_epoch == second.best_epoch
    for key, value in first.best_state_dict.items():
        assert torch.equal(value, second.best_state_dict[key]), key
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark


@needs_cuda
def test_a_resumed_fp16_run_keeps_its_gradient_scaler(tmp_path):
    from ferx.models.checkpoint import load_state

    _fit(tmp_path, "fp16", "cuda", "scaled")
    assert "scale" in load_state(tmp_path / "scaled.pt")["scaler"]
