"""The CUDA path: autocast as train.precision asks, deterministic settings, runs that repeat
themselves. Tests that need a GPU skip where there is none (bench/gpu_check.py runs the rest
of the check on a GPU machine)."""

from __future__ import annotations

import os

import pytest
import torch

from ferx.models import ModelConfig, build_model
from ferx.models.checkpoint import load_state
from ferx.params import Params, RuntimeParams, TrainParams
from ferx.training import loop
from ferx.training.device import DeviceError, deterministic_cuda
from ferx.training.loop import fit
from ferx.training.run import train_and_save
from ferx.training.run_spec import RunSpec
from tests.conftest import tiny_splits

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device here")
SPLITS = tiny_splits(160, seed=0)


def _fit(tmp_path, precision: str, device: str, name: str = "run", epochs=2, on_epoch_end=None):
    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(8, 16)))
    params = TrainParams(epochs=epochs, batch_size=32, precision=precision)
    spec = RunSpec("train", tmp_path / f"{name}.pt", on_epoch_end=on_epoch_end)
    return fit(model, SPLITS, params, spec, RuntimeParams(device=device))


def test_fp16_on_a_cpu_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(DeviceError, match=r"train.precision: fp16 needs a CUDA device"):
        _fit(tmp_path, "fp16", "cpu")
    assert not (tmp_path / "run.pt").exists()  # refused before any work


def test_the_train_stage_refuses_fp16_on_a_cpu_before_reading_any_data(tmp_path):
    params = Params.model_validate(
        {"train": {"precision": "fp16"}, "runtime": {"device": "cpu"}}
        | {"prepare": {"out_dir": str(tmp_path / "not-prepared")}}
    )
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):  # not FileNotFoundError
        train_and_save(
            params,
            name="train",
            model_path=tmp_path / "m.pt",
            metrics_path=tmp_path / "m.json",
            state_path=tmp_path / "state.pt",
            live_dir=None,
            plots_dir=tmp_path / "plots",
        )
    assert not any(tmp_path.iterdir())


def test_the_deterministic_settings_are_put_back_as_found(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(True, warn_only=True)  # a caller's own choice
    try:
        with deterministic_cuda():
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.is_deterministic_algorithms_warn_only_enabled()  # raises, not warns
            assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic == before[2]
        assert torch.backends.cudnn.benchmark  # as it was when the run began
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own: kept
        with deterministic_cuda():
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[3]


def _tensors(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    if isinstance(tree, dict):
        return {
            k: v for key, sub in tree.items() for k, v in _tensors(sub, f"{prefix}/{key}").items()
        }
    if isinstance(tree, list | tuple):
        return {
            k: v for i, sub in enumerate(tree) for k, v in _tensors(sub, f"{prefix}/{i}").items()
        }
    return {}


def _rows(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_fp16_with_its_gradient_scaler_resumes_bit_for_bit(tmp_path, monkeypatch, device):
    """The scaler's path, run where CUDA is not too: fp16 autocast and a GradScaler work on the
    CPU, so with the CUDA-only check lifted the loop's scaler code (scaling, skipped steps,
    the scale carried in the checkpoint) is exercised on any machine, and a resumed run
    equals an uninterrupted one."""
    monkeypatch.setattr(loop, "check_precision", lambda precision, device: None)
    full = _fit(tmp_path, "fp16", device, "full", epochs=3)
    ends = load_state(tmp_path / "full.pt")
    assert ends["scaler"]["scale"] > 0 and "_growth_tracker" in ends["scaler"]

    def interrupt(history):
        if len(history) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "fp16", device, "killed", epochs=3, on_epoch_end=interrupt)
    saved = load_state(tmp_path / "killed.pt")
    assert saved["epoch"] == 1 and "scaler" in saved
    resumed = _fit(tmp_path, "fp16", device, "killed", epochs=3)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert _rows(resumed.history) == _rows(full.history)
    assert load_state(tmp_path / "killed.pt")["scaler"] == ends["scaler"]
    for key, value in _tensors(ends["model"]).items():
        assert torch.equal(value, _tensors(load_state(tmp_path / "killed.pt")["model"])[key]), key


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "auto"])
def test_a_cuda_run_repeats_itself_bit_for_bit(tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip(f"{torch.cuda.get_device_name()} has no native bf16 (auto trains in fp32)")
    settings = []  # as they are while the run trains (fit puts them back when it ends)

    def during(history):
        settings.append(
            (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
        )

    first = _fit(tmp_path, precision, "cuda", "a", on_epoch_end=during)
    second = _fit(tmp_path, precision, "cuda", "b")
    assert _rows(first.history) == _rows(second.history)  # every metric but the wall time
    assert first.best_epoch == second.best_epoch
    for key, value in first.best_state_dict.items():
        assert torch.equal(value, second.best_state_dict[key]), key
    assert settings and all(deterministic and not bench for deterministic, bench in settings)
