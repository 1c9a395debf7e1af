"""train.precision: auto resolves to bf16 where the hardware computes in bf16 and to fp32
everywhere else; an explicit value stays; what ran is recorded, never `auto`."""

import pytest
import torch

from ferx import cpu
from ferx.params import TrainParams
from ferx.training import precision
from ferx.training.loop import fit
from ferx.training.precision import resolve_precision, slow_bf16_warning
from ferx.training.run_spec import RunSpec
from tests.conftest import tiny_splits

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def machine(monkeypatch):
    """The CPU and GPU features the resolution reads, set by the test (nothing is measured)."""
    features = {"arch": "x86_64", "bf16": False, "amx": False, "capability": "AVX2"}
    features |= {"cuda_bf16": False}
    monkeypatch.setattr(precision.platform, "machine", lambda: features["arch"])
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: features["bf16"])
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: features["amx"])
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: features["capability"])
    # a GPU without native bf16 still reports it when emulation counts (torch's default)
    monkeypatch.setattr(
        torch.cuda,
        "is_bf16_supported",
        lambda including_emulation=True: features["cuda_bf16"] or including_emulation,
    )
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        monkeypatch.delenv(name, raising=False)
    return features


# (features, environment, device, what auto resolves to, words of the reason)
CASES = {
    "avx512-bf16": ({"bf16": True, "capability": "AVX512"}, {}, CPU, "bf16", "AVX-512 BF16"),
    "amx-alone": ({"amx": True, "capability": "AVX512"}, {}, CPU, "bf16", "has AMX"),
    "avx2-only": ({}, {}, CPU, "fp32", "neither AVX-512 BF16 nor AMX"),
    "avx512-no-bf16": ({"capability": "AVX512"}, {}, CPU, "fp32", "neither"),
    "kernels-capped": (
        {"bf16": True, "amx": True, "capability": "AVX2"},
        {"ATEN_CPU_CAPABILITY": "avx2"},
        CPU,
        "fp32",
        "capped at AVX2 by ATEN_CPU_CAPABILITY",
    ),
    "torch-without-avx512-kernels": (
        {"bf16": True, "capability": "AVX2"},
        {},
        CPU,
        "fp32",
        "the kernels are capped at AVX2",
    ),
    "onednn-capped": (
        {"bf16": True, "capability": "AVX512"},
        {"ONEDNN_MAX_CPU_ISA": "avx512_core"},
        CPU,
        "fp32",
        "AVX512_CORE by ONEDNN_MAX_CPU_ISA",
    ),
    "onednn-capped-old-name": (
        {"amx": True, "capability": "AVX512"},
        {"DNNL_MAX_CPU_ISA": "avx2"},
        CPU,
        "fp32",
        "AVX2 by DNNL_MAX_CPU_ISA",
    ),
    "onednn-capped-at-bf16": (
        {"bf16": True, "capability": "AVX512"},
        {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
        CPU,
        "bf16",
        "AVX-512 BF16",
    ),
    "arm": ({"arch": "aarch64", "bf16": True, "amx": True}, {}, CPU, "fp32", "never measured"),
    "cuda-bf16": ({"cuda_bf16": True}, {}, CUDA, "bf16", "Some GPU supports bf16"),
    "cuda-emulated-bf16": ({}, {}, CUDA, "fp32", "Some GPU has no native bf16"),
}


@pytest.mark.parametrize("case", CASES)
def test_auto_resolves_to_bf16_only_where_it_is_native(machine, monkeypatch, case):
    features, environment, device, expected, why = CASES[case]
    machine.update(features)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    resolved = resolve_precision("auto", device)
    assert resolved.precision == expected
    assert why in resolved.reason
    for explicit in ("fp32", "bf16", "fp16"):  # an explicit value is taken as written
        assert resolve_precision(explicit, device).precision == explicit


def test_explicit_bf16_without_native_bf16_is_warned_about(machine, monkeypatch):
    machine.update(bf16=True, capability="AVX512")
    assert slow_bf16_warning("bf16", CPU) is None  # AVX-512 BF16: no warning
    machine.update(bf16=False, amx=True)
    assert slow_bf16_warning("bf16", CPU) is None  # AMX alone is native too
    machine.update(amx=False)
    assert "neither AVX-512 BF16 nor AMX" in slow_bf16_warning("bf16", CPU)
    assert slow_bf16_warning("fp32", CPU) is None
    assert slow_bf16_warning("bf16", CUDA) is None
    machine.update(bf16=True, capability="AVX2")
    assert "the kernels are capped at AVX2" in slow_bf16_warning("bf16", CPU)
    machine.update(capability="AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core")  # AVX-512 without BF16
    message = slow_bf16_warning("bf16", CPU)
    assert "AVX512_CORE by ONEDNN_MAX_CPU_ISA" in message and "train.precision=auto" in message
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert slow_bf16_warning("bf16", CPU) is None
    machine.update(arch="aarch64", bf16=False)  # not judged: never measured
    assert slow_bf16_warning("bf16", CPU) is None


def test_auto_is_the_default_and_the_schema_refuses_other_words():
    assert TrainParams().precision == "auto"
    with pytest.raises(ValueError, match="precision"):
        TrainParams(precision="fastest")


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_fit_trains_and_fingerprints_in_the_resolved_precision(
    tmp_path, monkeypatch, training_dtypes, native, expected
):
    from ferx.models import MiniXception, ModelConfig
    from ferx.training import loop

    reason = "said by the test"
    monkeypatch.setattr(precision, "native_bf16", lambda device: (native, reason))
    keyed = []
    real_fingerprint = loop.fingerprint

    def spy_fingerprint(params, *args):
        keyed.append(params.precision)
        return real_fingerprint(params, *args)

    monkeypatch.setattr(loop, "fingerprint", spy_fingerprint)
    torch.manual_seed(0)
    params = TrainParams(epochs=1, batch_size=64)  # precision: auto, the default
    fit(MiniXception(ModelConfig()), tiny_splits(100), params, RunSpec("t", tmp_path / "s.pt"))
    # the checkpoint's key holds what ran: a bf16 checkpoint never resumes an fp32 run
    assert keyed == ["bf16" if native else "fp32"]
    assert set(training_dtypes) == {expected}


def test_the_cpu_is_described_by_name_and_features(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n"
    )
    monkeypatch.setattr(cpu, "CPUINFO", info)
    cpu._cpuinfo.cache_clear()
    try:
        assert cpu.cpu_model() == "AMD EPYC 7B13"
        assert cpu.cpu_features() == ["AVX2"]
        assert cpu.describe_cpu().startswith("CPU: AMD EPYC 7B13 (")
        assert cpu.describe_cpu().endswith("; AVX2)")
        info.write_text("model name : X\nflags : avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
        cpu._cpuinfo.cache_clear()
        assert cpu.cpu_features() == ["AVX2", "AVX-512", "AVX-512 BF16", "AMX"]
        info.write_text("processor : 0\nBogoMIPS : 50.00\n")  # no flags: unknown, not absent
        cpu._cpuinfo.cache_clear()
        assert cpu.describe_cpu().endswith("; features unknown: no /proc/cpuinfo flags)")
    finally:
        cpu._cpuinfo.cache_clear()


def test_a_training_machine_is_labelled_from_its_record():
    zen4 = {"device": "cpu", "cpu_capability": "AVX512", "threads": 2}
    zen4 |= {"cpu_features": ["AVX2", "AVX-512", "AVX-512 BF16"], "environment": {}}
    assert cpu.machine_label(zen4) == "CPU AVX512 + AVX-512 BF16, 2 threads"
    xeon = zen4 | {"cpu_features": ["AVX2", "AVX-512", "AVX-512 BF16", "AMX"], "threads": 1}
    assert cpu.machine_label(xeon) == "CPU AVX512 + AMX, 1 thread"
    capped = xeon | {"cpu_capability": "AVX2", "environment": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert cpu.machine_label(capped) == "CPU AVX2 + AMX (oneDNN AVX2), 1 thread"
    assert cpu.machine_label({"device": "NVIDIA H100", "threads": 2}) == "NVIDIA H100, 2 threads"
