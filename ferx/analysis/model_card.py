"""`report/model_card.md`: a Hugging Face model card for the run's two models, from its metrics.

The YAML front matter (`model-index`: task, dataset and split, metrics) takes every number from
metrics/summary.json (the figures `dvc exp show` lists), the per-class tables from
metrics/eval/*.json, the cost from metrics/cost.json, so the card cannot disagree with them.
Format: https://huggingface.co/docs/hub/model-cards (the model-index of the Papers with Code
results schema). No torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ferx import paths
from ferx.analysis.adjustment import adjustment_phrase
from ferx.analysis.report import MODELS, trained_how
from ferx.analysis.run_files import RunFiles
from ferx.labels import CLASS_NAMES
from ferx.params import TrainParams


def _dataset(source: str) -> dict[str, str]:
    if source == "real":
        return {"name": "FER2013", "type": "fer2013", "split": "PrivateTest"}
    return {
        "name": f"{source} stand-in for FER2013 (not FER2013)",
        "type": source,
        "split": "PrivateTest",
    }


def _off_or(value: float, text: str) -> str:
    return text if value else "off"


def _mixing(mixup: float, cutmix: float) -> str:
    if mixup and cutmix:  # ferx.training.augment.mix_batch: one or the other per batch
        return f"mixup (alpha {mixup:g}) or CutMix (alpha {cutmix:g}), one per batch at even odds"
    return (
        f"mixup {_off_or(mixup, f'alpha {mixup:g}')}, CutMix {_off_or(cutmix, f'alpha {cutmix:g}')}"
    )


def recipe(train: TrainParams) -> str:
    """The baseline's recipe in one sentence, from params.yaml's `train` section (the report
    stage declares it, so `dvc repro` rewrites the card whenever it changes): the network and
    the training choices a reader compares with the paper's; params.yaml holds the rest
    (momentum, plateau settings, the stem, the pixel normalisation)."""
    model, aug = train.model, train.augment
    attention = {"se": "squeeze-and-excitation", "eca": "ECA channel attention"}
    network = model.arch
    if model.arch == "mini_xception":  # the other networks have fixed widths, no attention
        network += f" (module widths {', '.join(map(str, model.widths))}; " + (
            f"{attention[model.attention]} in each residual module)"
            if model.attention in attention
            else "no channel attention)"
        )
    augment = [
        "horizontal flips" if aug.hflip else "no flips",
        f"rotations up to {aug.rotate_deg:g} degrees" if aug.rotate_deg else "no rotations",
        f"shifts up to {100 * aug.translate:g} %" if aug.translate else "no shifts",
        f"zoom up to ±{100 * aug.scale:g} %" if aug.scale else "no zoom",
        f"random {aug.crop}-pixel crops" if aug.crop else "whole faces",
        f"random erasing {_off_or(aug.erase, f'with probability {aug.erase:g}')}",
        _mixing(aug.mixup, aug.cutmix),
    ]
    epochs = f"up to {train.epochs} epochs (early stopping after {train.patience} without gain)"
    ema = _off_or(train.ema, f"{train.ema:g}" + (", warmed up" if train.ema_warmup else ""))
    warmup = f", {train.warmup_epochs} warm-up epochs" if train.warmup_epochs else ""
    return (
        f"{network}; {epochs if train.patience else f'{train.epochs} epochs'} of "
        f"{train.optimizer} (learning rate {train.lr:g}, {train.schedule} schedule{warmup}, "
        f"weight decay {train.weight_decay:g}, batch {train.batch_size}, label smoothing "
        f"{train.label_smoothing:g}, weight EMA {ema}), epoch kept on PublicTest "
        f"{train.select_metric}; augmentation: {', '.join(augment)}"
    )


def front_matter(root: str | Path = ".") -> dict[str, Any]:
    """The card's YAML header as data (numbers straight from metrics/summary.json)."""
    run = RunFiles(Path(root))
    summary = run.json(paths.SUMMARY)
    cost = run.json(paths.COST)
    # fresh dicts per entry: shared ones would come out as YAML anchors (&id001), which some
    # model-card readers do not resolve
    task = lambda: {"type": "image-classification", "name": "Facial expression recognition"}  # noqa: E731
    dataset = lambda: _dataset(summary["source"])  # noqa: E731
    index = []
    for model in MODELS:
        private = summary[model]["private"]
        results = [
            {
                "task": task(),
                "dataset": dataset(),
                "metrics": [
                    {
                        "type": "accuracy",
                        "value": private["accuracy"],
                        "name": "PrivateTest accuracy (single view)",
                    },
                    {
                        "type": "f1",
                        "value": private["macro_f1"],
                        "name": "PrivateTest macro-F1",
                        "args": {"average": "macro"},
                    },
                ],
            },
        ]
        tta = cost[model].get("tta")
        if tta and "tta_accuracy" in private:
            results.append(
                {
                    "task": task(),
                    "dataset": dataset(),
                    "metrics": [
                        {
                            "type": "accuracy",
                            "value": private["tta_accuracy"],
                            "name": f"PrivateTest accuracy with TTA ({tta['views']}, "
                            f"{tta['n_views']} views)",
                        },
                    ],
                }
            )
        index.append({"name": f"ferx-{cost[model]['arch']}-{model}", "results": results})
    return {
        "license": "mit",
        "library_name": "pytorch",
        "pipeline_tag": "image-classification",
        "tags": ["facial-expression-recognition", cost[MODELS[0]]["arch"], "onnx", "dvc"]
        + (["fer2013"] if summary["source"] == "real" else [f"{summary['source']}-data"]),
        "datasets": ["fer2013"] if summary["source"] == "real" else [],
        "metrics": ["accuracy", "f1"],
        "model-index": index,
    }


def _four(value: float | None) -> str:
    return "n/a (evaluate.tta: none)" if value is None else f"{value:.4f}"


def _per_class(evaluation: dict[str, Any]) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name in CLASS_NAMES:
        c = evaluation["per_class"][name]
        lines.append(
            f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | "
            f"{c['support']} |"
        )
    return "\n".join(lines)


def model_card(root: str | Path = ".", train_params: TrainParams | None = None) -> str:
    """The whole card: front matter, then the sections a reader of a model card expects;
    with `train_params` (params.yaml's `train`, as the report stage passes it), the recipe too."""
    root = Path(root)
    header = front_matter(root)
    run = RunFiles(Path(root))
    summary = run.json(paths.SUMMARY)
    train = run.json(paths.TRAIN.metrics_path)
    improve = run.json(paths.IMPROVE.metrics_path)
    cost = run.json(paths.COST)
    evals = {m: run.json(paths.evaluation(m, "private_test")) for m in MODELS}
    source = summary["source"]
    arch = cost[MODELS[0]]["arch"]
    warning = (
        ""
        if source == "real"
        else f"\n> **Trained on the {source} stand-in, not FER2013.** Its numbers say nothing "
        "about facial-expression recognition; rerun `dvc repro` with FER2013 in `data/raw/`.\n"
    )
    b, i = summary["baseline"], summary["improved"]
    phrase = adjustment_phrase(improve.get("logit_adjustment"))
    adjusted = f", then its logits adjusted ({phrase})"
    if improve.get("kept_start") and not phrase:
        kept = (
            "the improve stage kept its starting model (no retrained epoch beat it on "
            "PublicTest), so `improved` equals `baseline`"
        )
    elif improve.get("kept_start"):
        kept = "the improve stage kept its starting model" + adjusted
    else:
        kept = f"improve kept epoch {improve['best_epoch']} of {improve['epochs_run']}"
        kept += adjusted if phrase else ""
    hows = {model: trained_how(run) for model, run in (("baseline", train), ("improved", improve))}
    if hows["baseline"] and hows["baseline"] == hows["improved"]:
        how = f"both {hows['baseline']}"
    else:
        how = "; ".join(f"{model} {text}" for model, text in hows.items() if text)
    results = [
        "| model | PrivateTest accuracy | macro-F1 | with TTA | PublicTest accuracy |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in MODELS:
        s = summary[model]
        results.append(
            f"| {model} | {s['private']['accuracy']:.4f} | {s['private']['macro_f1']:.4f} | "
            f"{_four(s['private'].get('tta_accuracy'))} | {s['public']['accuracy']:.4f} |"
        )
    tta_note = (
        "TTA (test-time augmentation) averages the predictions of several views of each face "
        "and costs that many forward passes. "
        if any("tta_accuracy" in summary[m]["private"] for m in MODELS)
        else ""
    )
    efficiency = "\n".join(
        f"- {m}: {cost[m]['gflops']:.5f} GFLOPs per face (fvcore, one multiply-add = one flop), "
        f"{cost[m]['parameters']:,} parameters, {cost[m]['latency_ms_batch1']} ms per face "
        f"(batch 1, {cost[m]['threads']} CPU threads); efficiency = PrivateTest accuracy % / "
        f"GFLOPs = {100 * cost[m]['private_accuracy']:.2f} / {cost[m]['gflops']:.5f} = "
        f"{cost[m]['efficiency']:.1f}"
        for m in MODELS
    )
    recipe_line = (
        "Baseline recipe (params.yaml `train`; improve fine-tunes it by its own `improve` "
        f"section, with the same network and augmentation): {recipe(train_params)}."
        if train_params
        else ""
    )
    body = f"""
# ferx {arch}: facial-expression recognition on 48x48 grayscale faces
{warning}
Two models from one `dvc repro` of ferx (this repository): `baseline`, the
{arch} trained by the train stage, and `improved`, the baseline retrained with class weights
({improve["weighting"]} weighting, {improve["retrain"]} layers) for the rare classes. Files:
`models/baseline.pt`, `models/improved.pt` (PyTorch state dicts, loaded with
`weights_only=True`) and `models/*.onnx` (ONNX, checked against PyTorch on PrivateTest).
{recipe_line}
{f"How they trained: {how}." if how else ""}

## Intended use

Research and teaching: a small, reproducible baseline for facial-expression recognition on
FER2013-like input (one face, cropped and aligned, 48x48 grayscale), and a subject for
ablations, Grad-CAM and cost studies. `ferx-predict --model models/improved.onnx photo.jpg`
classifies a face photo or a video.

## Out-of-scope use

Not for decisions about people: hiring, policing, surveillance, health, education or
emotion "detection" in any setting where the result affects someone. A facial expression is
not an emotion; the labels are what annotators saw in a posed or web-scraped photo. Not for
faces that are not cropped and frontal, for infants, or for any population the data does not
represent.

## Training data and its caveats

FER2013 (Goodfellow et al. 2013, the ICML 2013 representation-learning challenge): 35,887
web-scraped faces, 48x48 grayscale, seven labels (angry, disgust, fear, happy, sad, surprise,
neutral), split Training 28,709 / PublicTest 3,589 / PrivateTest 3,589. Known problems: noisy
labels (human accuracy is about 65%), strong class imbalance (disgust is 1.5% of Training),
low resolution, and an unmeasured demographic skew (age, gender, skin tone: this card cannot
say how the model does for any group). This run's data: **{source}**.

## How the models were selected

Only on PublicTest: the kept epoch is the best PublicTest {train["select_metric"].split()[-1]}
(baseline: epoch {train["best_epoch"]} of {train["epochs_run"]}) and the best PublicTest
{improve["select_metric"].split()[-1]} (improved: {kept}). PrivateTest chose nothing and is
reported below.

## Results (PrivateTest unless said)

{chr(10).join(results)}

{tta_note}Baseline vs improved on PrivateTest: accuracy
{b["private"]["accuracy"]:.4f} vs {i["private"]["accuracy"]:.4f}, disgust recall
{b["private"]["disgust_recall"]:.4f} vs {i["private"]["disgust_recall"]:.4f}.

### Per class, baseline, PrivateTest

{_per_class(evals["baseline"])}

### Per class, improved, PrivateTest

{_per_class(evals["improved"])}

## Efficiency

{efficiency}

## Limitations

- Accuracy on FER2013 is bounded by its labels; published single models reach about 73%
  (Khaireddin & Chen 2021) with far more compute.
- Rare classes (disgust, fear) are recognised far less often than happy or surprise: see the
  per-class recall above.
- Results are from one seed; seed-to-seed spread is in the ablation tables (`ablation/`).
- Inputs far from FER2013 (colour, large, uncropped, profile faces) are outside what was
  measured.

## License

The code and these weights: MIT (this repository). FER2013 itself was released for the 2013
Kaggle challenge without a stated license: check its terms before any use beyond research.
"""
    return "---\n" + yaml.safe_dump(header, sort_keys=False, width=100) + "---\n" + body


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML between the card's two `---` lines."""
    if not text.startswith("---\n"):
        raise ValueError("no front matter: the card does not start with ---")
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])
