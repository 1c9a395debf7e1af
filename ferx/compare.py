"""Baseline vs improved on PrivateTest: per-class recall side by side, plus a markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ferx.labels import CLASS_NAMES

MODELS = ("baseline", "improved")


def load_eval(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `dvc repro` for the evaluate stages first")
    return json.loads(path.read_text())


def compare(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, macro-F1, balanced accuracy and per-class recall of both models, and deltas."""
    out: dict[str, Any] = {
        "source": reports["baseline"]["source"],
        "split": reports["baseline"]["split"],
    }
    for model in MODELS:
        report = reports[model]
        out[model] = {
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "balanced_accuracy": report["balanced_accuracy"],
            "recall": {name: report["per_class"][name]["recall"] for name in CLASS_NAMES},
        }
    base, new = out["baseline"], out["improved"]
    out["delta"] = {
        **{k: new[k] - base[k] for k in ("accuracy", "macro_f1", "balanced_accuracy")},
        "recall": {n: new["recall"][n] - base["recall"][n] for n in CLASS_NAMES},
    }
    return out


def recall_records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for DVC's bar_horizontal template: one bar per class and model."""
    return [
        {"class_model": f"{name} / {model}", "recall": round(result[model]["recall"][name], 4)}
        for name in CLASS_NAMES
        for model in MODELS
    ]


def markdown_table(result: dict[str, Any]) -> str:
    rows = [
        f"PrivateTest, {result['source']} data | baseline | improved | change",
        "---|---:|---:|---:",
    ]
    for key, label in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("balanced_accuracy", "balanced accuracy"),
    ):
        rows.append(_row(label, result["baseline"][key], result["improved"][key]))
    for name in CLASS_NAMES:
        rows.append(
            _row(
                f"recall {name}",
                result["baseline"]["recall"][name],
                result["improved"]["recall"][name],
            )
        )
    return "\n".join(f"| {r} |" for r in rows) + "\n"


def _row(label: str, before: float, after: float) -> str:
    return f"{label} | {before:.4f} | {after:.4f} | {100 * (after - before):+.1f} pt"


def plot_recall(result: dict[str, Any], path: str | Path) -> None:
    from ferx.plots import plt, save_figure

    x = np.arange(len(CLASS_NAMES))
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for offset, model in ((-0.2, "baseline"), (0.2, "improved")):
        values = [result[model]["recall"][n] for n in CLASS_NAMES]
        bars = ax.bar(x + offset, values, width=0.4, label=model)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set(
        ylabel="recall",
        ylim=(0, 1.05),
        title=f"Per-class recall on {result['split']} ({result['source']} data)",
    )
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
