"""Every file and folder the pipeline's stages write, named once, relative to the repository
root (the folder `dvc repro` runs in). dvc.yaml's `outs` declare the same paths (DVC reads
YAML, not Python); tests/test_paths.py checks that the two agree, and that no stage script or
library module spells one of them itself. The folders a param names (`prepare.out_dir`,
`prepare.probes_dir`, `explain.user_probes`) come from params.yaml, not from here.

Imports nothing but the standard library: the report, the ablation tool and the stages all
read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_NAMES = ("baseline", "improved")  # the two models every later stage evaluates

MODELS_DIR = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")

PREPARE_SUMMARY = METRICS / "prepare.json"  # for people: no stage reads it
IMPROVE_INIT = MODELS_DIR / "improve_init"  # what improve starts from (the improve_init stage)
COMPARE = METRICS / "compare.json"
SUMMARY = METRICS / "summary.json"  # the headline metrics `dvc exp show` lists
COMPARE_PLOTS = PLOTS / "compare"
RECALL_RECORDS = COMPARE_PLOTS / "recall.json"
RECALL_FIGURE = COMPARE_PLOTS / "recall.png"
COMPARE_TABLE = COMPARE_PLOTS / "table.md"
COST = METRICS / "cost.json"
COST_PLOTS = PLOTS / "cost"
COST_FIGURE = COST_PLOTS / "accuracy_vs_gflops.png"
PLOTS_TEMPLATE = PLOTS / "page" / "template.html"
REPORT = Path("report")
REPORT_PAGE = REPORT / "index.html"
MODEL_CARD = REPORT / "model_card.md"
ABLATIONS = Path("ablation")  # what ferx-ablate writes (tracked by git, not a stage's out)
CURVES = ("loss", "accuracy")  # the per-epoch figures of a training run


@dataclass(frozen=True)
class TrainingOutputs:
    """What one training stage writes; the keyword arguments of `train_and_save`."""

    model_path: Path
    metrics_path: Path
    state_path: Path  # the resume checkpoint: not a DVC out, removed when the run completes
    live_dir: Path  # DVCLive's folder
    plots_dir: Path

    def curve_figure(self, metric: str) -> Path:
        return curve_figure(self.plots_dir, metric)

    def live_series(self, split: str, metric: str) -> Path:
        """DVCLive's per-epoch TSV of `metric` on `split` (train, public, private)."""
        return self.live_dir / "plots" / "metrics" / split / f"{metric}.tsv"


def _training(stage: str, model: str) -> TrainingOutputs:
    return TrainingOutputs(
        model_path=model_file(model),
        metrics_path=METRICS / f"{stage}.json",
        state_path=Path("checkpoints") / stage / "state.pt",
        live_dir=Path("dvclive") / stage,
        plots_dir=PLOTS / stage,
    )


def curve_figure(plots_dir: str | Path, metric: str) -> Path:
    """The per-epoch figure of `metric` (one of CURVES) in a training run's plots folder."""
    return Path(plots_dir) / f"{metric}.png"


def model_file(model: str) -> Path:
    return MODELS_DIR / f"{model}.pt"


def onnx_file(model: str) -> Path:
    return MODELS_DIR / f"{model}.onnx"


def export_report(model: str) -> Path:
    return METRICS / "export" / f"{model}.json"


def evaluation(model: str, split: str) -> Path:
    return METRICS / "eval" / f"{model}_{split}.json"


def evaluation_plots(model: str, split: str) -> Path:
    return PLOTS / "eval" / f"{model}_{split}"


def confusion_records(model: str, split: str) -> Path:
    return evaluation_plots(model, split) / "confusion.json"


def confusion_figure(model: str, split: str) -> Path:
    return evaluation_plots(model, split) / "confusion.png"


def explanation(model: str) -> Path:
    return METRICS / "explain" / f"{model}.json"


def explain_plots(model: str) -> Path:
    return PLOTS / "explain" / model


def gradcam_figure(model: str, probe_set: str) -> Path:
    return explain_plots(model) / f"{probe_set}.png"


def activations_figure(model: str, probe_set: str) -> Path:
    return explain_plots(model) / f"activations_{probe_set}.png"


# what ferx-ablate writes in a study's folder (ablation/<study>/, or its --out)
ABLATION_TABLE = "table.md"
ABLATION_ROWS = "table.json"
ABLATION_FRONTIER = "frontier.png"


def ablation_table(study: str) -> Path:
    return ABLATIONS / study / ABLATION_TABLE


def ablation_frontier(study: str) -> Path:
    return ABLATIONS / study / ABLATION_FRONTIER


TRAIN = _training("train", "baseline")  # the baseline
IMPROVE = _training("improve", "improved")
