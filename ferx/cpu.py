"""Which CPU this is, as figures need it said: the model name and the instruction-set features
that decide ferx's speed (AVX2, AVX-512, AVX-512 BF16, AMX). No torch: benchmarks print it in
their first line and the report reads it from files, neither should pay for the import.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path
from typing import Any

# /proc/cpuinfo flag -> the name people know it by, in the order a description lists them
FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX-512 BF16",
    "amx_bf16": "AMX",
}
CPUINFO = Path("/proc/cpuinfo")


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty where there is none."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # one processor is enough: they are alike
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's marketing name, e.g. 'AMD EPYC 7B13' ('unknown CPU' where none is told)."""
    info = _cpuinfo()
    name = info.get("model name") or info.get("Model") or platform.processor()
    return " ".join(name.split()) or "unknown CPU"


def cpu_features() -> list[str]:
    """Which of FEATURES this CPU has, by their common names (x86 Linux; empty elsewhere)."""
    flags = set((_cpuinfo().get("flags") or "").split())
    return [name for flag, name in FEATURES.items() if flag in flags]


def describe_cpu() -> str:
    """One line that names the machine a figure came from: model, architecture, features."""
    features = cpu_features()
    if not _cpuinfo().get("flags"):
        has = "features unknown: no /proc/cpuinfo flags"
    else:
        has = ", ".join(features) if features else "none of " + ", ".join(FEATURES.values())
    return f"CPU: {cpu_model()} ({platform.machine() or 'unknown'}; {has})"


def machine_label(bits: dict[str, Any]) -> str:
    """A training's machine in a few words, from its `reproducibility` record: the device, the
    kernels' instruction set and the bf16 hardware, any oneDNN cap, the threads. Runs with
    different labels cannot be expected to agree bit for bit (e.g. 'CPU AVX512 + AMX, 2
    threads', 'CPU AVX2, 2 threads')."""
    device = bits.get("device", "cpu")
    if device == "cpu":
        head = f"CPU {bits.get('cpu_capability', '?')}"
        features = bits.get("cpu_features") or []
        native = [name for name in ("AMX", "AVX-512 BF16") if name in features]
        if native:
            head += f" + {native[0]}"
        environment = bits.get("environment") or {}
        if cap := environment.get("ONEDNN_MAX_CPU_ISA") or environment.get("DNNL_MAX_CPU_ISA"):
            head += f" (oneDNN {cap})"
    else:
        head = device
    threads = bits.get("threads")
    return f"{head}, {threads} thread{'' if threads == 1 else 's'}" if threads else head
