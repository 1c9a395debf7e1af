"""Which precision a training runs in: `train.precision: auto` resolved for the device at hand.

bf16 autocast is fast only where the hardware computes in bf16: on x86 CPUs with AVX-512 BF16
or AMX, and on CUDA devices that support it. Elsewhere PyTorch emulates it, and a training step
ran 19x slower than fp32 on an AVX2-only AMD Zen 3 (issue of 2026-12-05; 8.6x with the
instruction set capped at AVX2 on a Zen 4: BENCHMARKS.md). So `auto` (the default) means bf16
where it is native and fp32 everywhere else; `fp32`, `bf16` and `fp16` are taken as written.
What ran is recorded (metrics/train.json's `reproducibility.precision`), never `auto`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

from ferx.training.device import DeviceError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.precision -> dtype
# oneDNN's ISAs with bf16 dot products: AVX512_CORE_BF16 and everything above it
_ONEDNN_BF16_ISAS = ("BF16", "FP16", "AMX", "AVX10", "ALL")


@dataclass(frozen=True)
class Resolved:
    precision: str  # what runs: fp32, bf16 or fp16, never auto
    reason: str  # why, in a few words (printed when training starts, kept in the record)


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "x86", "i686")


def _has_amx() -> bool:
    return getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


def _onednn_cap() -> tuple[str, str]:
    """oneDNN's instruction-set cap and the variable that set it (its old name counts too)."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        if value := os.environ.get(name, "").strip():
            return value.upper(), name
    return "", ""


def cpu_bf16_missing() -> str | None:
    """Why bf16 would be emulated on this x86 CPU (no AVX-512 BF16 or AMX, or kernels capped
    below them: ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, a torch built without AVX-512
    kernels); None where it is native."""
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    capability = torch.backends.cpu.get_cpu_capability()
    onednn_cap, onednn_variable = _onednn_cap()
    if not (bf16 or _has_amx()):
        return "this CPU has neither AVX-512 BF16 nor AMX"
    if not capability.startswith("AVX512"):
        by = " by ATEN_CPU_CAPABILITY" if os.environ.get("ATEN_CPU_CAPABILITY") else ""
        return f"the kernels are capped at {capability}{by}"
    if onednn_cap and not any(isa in onednn_cap for isa in _ONEDNN_BF16_ISAS):
        return f"oneDNN is capped at {onednn_cap} by {onednn_variable}"
    return None


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 autocast runs natively on `device`, and what says so."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} supports bf16"
        return False, f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type != "cpu":
        return False, f"bf16 on {device.type} was never measured"
    if not is_x86():
        return False, f"bf16 on {platform.machine() or 'this'} CPUs was never measured"
    if missing := cpu_bf16_missing():
        return False, missing
    return True, "this CPU has " + ("AMX" if _has_amx() else "AVX-512 BF16")


def resolve_precision(asked: str, device: torch.device) -> Resolved:
    """`train.precision` as it will run on `device`: auto becomes bf16 where bf16 is native,
    fp32 everywhere else; an explicit value stays as it is."""
    if asked != "auto":
        return Resolved(asked, "set explicitly")
    native, why = native_bf16(device)
    return Resolved("bf16" if native else "fp32", why)


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(
            "train.precision: fp16 needs a CUDA device (runtime.device); on a CPU use auto "
            "(bf16 where the CPU computes in bf16, else fp32)"
        )


def slow_bf16_warning(precision: str, device: torch.device) -> str | None:
    """A warning when an explicit bf16 would be emulated on this x86 CPU: with the caps at AVX2
    a 3-epoch training took 172 s against fp32's 20 s (BENCHMARKS.md, "What changes the bits").
    Only x86 is judged: other CPUs were never measured. (`auto` never gets here: it resolves to
    fp32 on such a CPU.)"""
    if precision != "bf16" or device.type != "cpu" or not is_x86():
        return None
    if (why := cpu_bf16_missing()) is None:
        return None
    return (
        f"warning: train.precision: bf16, but {why}: with the instruction set capped at AVX2 "
        "bf16 trained 8.6x slower than fp32 (BENCHMARKS.md); train.precision: auto or fp32 in "
        "params.yaml (or -S train.precision=auto) is likely faster here"
    )
