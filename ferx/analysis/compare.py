"""Baseline vs improved on PublicTest (which chose the improved model) and PrivateTest
(reported): headline metrics and per-class recall side by side, plus a markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ferx import paths
from ferx.analysis.adjustment import adjustment_phrase
from ferx.cpu import machine_label
from ferx.labels import CLASS_NAMES, EVAL_SPLITS, SPLIT_TITLES

MODELS = paths.MODEL_NAMES
# metric prefix -> (evaluate file suffix, title); PublicTest first: it is the one that chose
SPLITS = {short: (name, SPLIT_TITLES[name]) for short, name in EVAL_SPLITS.items()}
HEADLINE = (
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("balanced_accuracy", "balanced accuracy"),
)


def load_eval(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `dvc repro` for the stages before compare")
    return json.loads(path.read_text())


def load_reports(root: str | Path = ".") -> dict[str, dict[str, dict[str, Any]]]:
    """reports[split][model] from the evaluate stage's files under `root`."""
    return {
        short: {m: load_eval(Path(root) / paths.evaluation(m, file)) for m in MODELS}
        for short, (file, _) in SPLITS.items()
    }


def compare(reports: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """For each split: headline metrics and per-class recall of both models, and deltas."""
    out: dict[str, Any] = {"source": reports["private"]["baseline"]["source"]}
    for short, by_model in reports.items():
        side: dict[str, Any] = {}
        for model in MODELS:
            report = by_model[model]
            side[model] = {
                **{key: report[key] for key, _ in HEADLINE},
                "recall": {name: report["per_class"][name]["recall"] for name in CLASS_NAMES},
            }
        base, new = side["baseline"], side["improved"]
        side["delta"] = {
            **{key: new[key] - base[key] for key, _ in HEADLINE},
            "recall": {n: new["recall"][n] - base["recall"][n] for n in CLASS_NAMES},
        }
        out[short] = side
    return out


def summary(
    reports: dict[str, dict[str, dict[str, Any]]],
    runs: dict[str, dict[str, Any]],
    costs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The headline numbers of both models, the one file DVC shows as metrics (31 columns in
    `dvc exp show`): per split accuracy, macro-F1 and Disgust recall, and the test-time
    augmented accuracy beside them (`tta_accuracy`, when evaluate.tta is on), and with a logit
    adjustment PublicTest's cross-fitted macro-F1 (`macro_f1_cross_fitted`); the kept epoch,
    training minutes and the precision it trained in (train.precision as it ran: auto is
    resolved per machine); GFLOPs, parameters and efficiency (single view); and the machine
    the baseline trained on (`machine_label`). Balanced accuracy and per-class figures stay in
    metrics/eval/. `runs` holds the train and improve metrics by model, `costs` the cost
    stage's figures by model."""
    out: dict[str, Any] = {"source": reports["private"]["baseline"]["source"]}
    if bits := runs["baseline"].get("reproducibility"):
        out["machine"] = machine_label(bits)
        if bits.get("mixed"):  # a resumed training whose sittings ran under unlike settings
            labels = dict.fromkeys(machine_label(s) for s in bits.get("sittings") or [])
            out["machine"] = "mixed: " + " / ".join(labels)
    for model in MODELS:
        row: dict[str, Any] = {}
        for short in SPLITS:
            report = reports[short][model]
            row[short] = {key: round(report[key], 4) for key in ("accuracy", "macro_f1")}
            row[short]["disgust_recall"] = round(report["per_class"]["disgust"]["recall"], 4)
            if "tta" in report:
                row[short]["tta_accuracy"] = round(report["tta"]["accuracy"], 4)
        run, cost = runs[model], costs[model]
        # a logit adjustment chosen on PublicTest: its PublicTest figures above are in-sample;
        # what it is worth on faces it was not chosen on (ablation rules read this)
        if crossed := (run.get("logit_adjustment") or {}).get("public_cross_fitted"):
            row["public"]["macro_f1_cross_fitted"] = round(crossed["macro_f1"], 4)
        row["best_epoch"] = run["best_epoch"]
        if "kept_start" in run:
            row["kept_start"] = run["kept_start"]
        row["train_minutes"] = round(run["seconds"] / 60, 1)
        if precision := (run.get("reproducibility") or {}).get("precision"):
            row["precision"] = precision
        row["gflops"] = round(cost["gflops"], 5)
        row["parameters"] = cost["parameters"]
        row["efficiency"] = round(cost["efficiency"], 1)
        out[model] = row
    return out


def recall_records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for DVC's bar_horizontal template: one bar per class, model and split."""
    return [
        {
            "class_model": f"{name} / {model} / {SPLITS[short][1]}",
            "recall": round(result[short][model]["recall"][name], 4),
        }
        for name in CLASS_NAMES
        for short in SPLITS
        for model in MODELS
    ]


def selection_note(improve_run: dict[str, Any]) -> str:
    """What chose the improved model, read from the improve run's metrics (metrics/improve.json:
    its select_metric, e.g. "public macro_f1", best_epoch and, when fine-tuned, kept_start)."""
    short, _, metric = improve_run["select_metric"].partition(" ")
    chosen_on = f"{SPLITS[short][1]} {dict(HEADLINE).get(metric, metric)}"
    others = " and ".join(title for s, (_, title) in SPLITS.items() if s != short)
    if improve_run.get("kept_start"):
        kept = f"the starting baseline (epoch 0): no improve epoch beat it on {chosen_on}"
    else:
        start = " (the starting baseline counted as epoch 0)" if "kept_start" in improve_run else ""
        kept = f"improve's epoch {improve_run['best_epoch']}, chosen on {chosen_on}{start}"
    if phrase := adjustment_phrase(improve_run.get("logit_adjustment")):
        kept += f", then its logits adjusted: {phrase}"
    return f"The improved model is {kept}; {others} chose nothing."


def markdown_table(result: dict[str, Any], improve_run: dict[str, Any]) -> str:
    """Both splits side by side, and a note on what chose the improved model (`improve_run`:
    metrics/improve.json)."""
    titles = [SPLITS[short][1] for short in SPLITS]
    rows = [
        f"{result['source']} data | "
        + " | ".join(f"{t} baseline | {t} improved | {t} change" for t in titles),
        "---" + "|---:|---:|---:" * len(titles),
    ]
    metrics = [(key, label, None) for key, label in HEADLINE]
    metrics += [("recall", f"recall {name}", name) for name in CLASS_NAMES]
    for key, label, name in metrics:
        cells = []
        for short in SPLITS:
            before, after = (
                result[short][m][key] if name is None else result[short][m][key][name]
                for m in MODELS
            )
            cells.append(f"{before:.4f} | {after:.4f} | {100 * (after - before):+.1f} pt")
        rows.append(f"{label} | " + " | ".join(cells))
    table = "\n".join(f"| {r} |" for r in rows)
    return f"{table}\n\n{selection_note(improve_run)}\n"


def plot_recall(result: dict[str, Any], path: str | Path) -> None:
    from ferx.plots import plt, save_figure

    x = np.arange(len(CLASS_NAMES))
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(12.0, 4.0), sharey=True)
    for ax, (short, (_, title)) in zip(axes, SPLITS.items(), strict=True):
        for offset, model in ((-0.2, "baseline"), (0.2, "improved")):
            values = [result[short][model]["recall"][n] for n in CLASS_NAMES]
            bars = ax.bar(x + offset, values, width=0.4, label=model)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(x, CLASS_NAMES, rotation=30)
        ax.set(ylim=(0, 1.05), title=f"Per-class recall on {title} ({result['source']} data)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("recall")
    axes[0].legend()
    save_figure(fig, path)
