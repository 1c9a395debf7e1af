"""The report page and the model card are written from the run's files, and only from them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferx.analysis.model_card import model_card, parse_front_matter
from ferx.analysis.report import ReportError, build_report, markdown_to_html
from ferx.labels import CLASS_NAMES
from tests.browser import CHROMIUM, offline_dom

MODELS = ("baseline", "improved")


# what the train stage records of its machine (train.precision: auto resolved on a Xeon)
BITS = {
    "device": "cpu",
    "cpu": "Intel(R) Xeon(R) Processor",
    "cpu_features": ["AVX2", "AVX-512", "AVX-512 BF16", "AMX"],
    "cpu_capability": "AVX512",
    "threads": 2,
    "precision": "bf16",
    "precision_reason": "this CPU has AMX",
    "environment": {},
}


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), shade, dtype=np.uint8)).save(path)


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _evaluation(model: str, split: str, accuracy: float) -> dict:
    per_class = {
        name: {"precision": 0.5 + i / 20, "recall": 0.4 + i / 20, "f1": 0.45, "support": 10 + i}
        for i, name in enumerate(CLASS_NAMES)
    }
    return {
        "source": "synthetic",
        "model": model,
        "split": split,
        "loss": 1.1,
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.1,
        "balanced_accuracy": accuracy - 0.05,
        "per_class": per_class,
        "tta": {"views": "flip", "n_views": 2, "accuracy": accuracy + 0.01},
    }


def write_run(root: Path, source: str = "synthetic", kept_start: bool = False) -> Path:
    """The files one `dvc repro` leaves, with distinct made-up numbers."""
    counts = {name: 10 + i for i, name in enumerate(CLASS_NAMES)}
    _json(
        root / "metrics/prepare.json",
        {
            "source": source,
            "input": "data/raw",
            "sha256": None,
            "rows": 300,
            "counts": {
                s: {"total": sum(counts.values()), **counts}
                for s in ("train", "public_test", "private_test")
            },
        },
    )
    run = {"loss": 1.2, "accuracy": 0.61, "macro_f1": 0.5, "balanced_accuracy": 0.55}
    _json(
        root / "metrics/train.json",
        {
            "source": source,
            "select_metric": "public accuracy",
            "best_epoch": 2,
            "epochs_run": 3,
            "public": run,
            "private": {**run, "accuracy": 0.6123},
            "seconds": 90.0,
            "seconds_per_epoch": 30.0,
            "reproducibility": BITS,
        },
    )
    _json(
        root / "metrics/improve.json",
        {
            "source": source,
            "select_metric": "public macro_f1",
            "best_epoch": 0 if kept_start else 1,
            "epochs_run": 2,
            "kept_start": kept_start,
            "weighting": "effective",
            "init": "baseline",
            "retrain": "all",
            "class_weights": {n: 1.0 for n in CLASS_NAMES},
            "public": run,
            "private": run,
        },
    )
    accuracy = {
        ("baseline", "public_test"): 0.61,
        ("baseline", "private_test"): 0.6123,
        ("improved", "public_test"): 0.62,
        ("improved", "private_test"): 0.6311,
    }
    for (model, split), acc in accuracy.items():
        _json(root / f"metrics/eval/{model}_{split}.json", _evaluation(model, split, acc))
        _png(root / f"plots/eval/{model}_{split}/confusion.png", 40)
    recall = {name: 0.5 for name in CLASS_NAMES}
    _json(
        root / "metrics/compare.json",
        {
            split: {
                m: {"accuracy": accuracy[(m, f"{split}_test")], "macro_f1": 0.5, "recall": recall}
                for m in MODELS
            }
            for split in ("public", "private")
        },
    )
    cost = {
        m: {
            "arch": "mini_xception",
            "gflops": 0.01638,
            "parameters": 199671,
            "latency_ms_batch1": 3.2,
            "throughput_img_s": 900,
            "threads": 2,
            "private_accuracy": accuracy[(m, "private_test")],
            "efficiency": 100 * accuracy[(m, "private_test")] / 0.01638,
            "tta": {
                "views": "flip",
                "n_views": 2,
                "gflops": 0.03276,
                "private_accuracy": accuracy[(m, "private_test")] + 0.01,
                "efficiency": 100 * (accuracy[(m, "private_test")] + 0.01) / 0.03276,
            },
        }
        for m in MODELS
    }
    _json(root / "metrics/cost.json", {"source": source, "note": "one multiply-add", **cost})
    _json(
        root / "metrics/summary.json",
        {
            "source": source,
            **{
                m: {
                    "public": {
                        "accuracy": accuracy[(m, "public_test")],
                        "macro_f1": 0.51,
                        "disgust_recall": 0.1,
                        "tta_accuracy": 0.62,
                    },
                    "private": {
                        "accuracy": accuracy[(m, "private_test")],
                        "macro_f1": 0.5234,
                        "disgust_recall": 0.2,
                        "tta_accuracy": 0.6401,
                    },
                    "best_epoch": 2,
                    "train_minutes": 1.5,
                    "gflops": 0.01638,
                    "parameters": 199671,
                    "efficiency": cost[m]["efficiency"],
                }
                for m in MODELS
            },
        },
    )
    for model in MODELS:
        images = [
            {
                "file": f"{n}.png",
                "true": n,
                "predicted": "happy",
                "correct": n == "happy",
                "probabilities": {c: 1 / 7 for c in CLASS_NAMES},
            }
            for n in ("happy", "sad")
        ]
        sets = {s: {"share_correct": 0.5, "images": images} for s in ("test", "test2")}
        activations = {
            s: {"figure": f"plots/explain/{model}/activations_{s}.png"} for s in ("test", "test2")
        }
        _json(
            root / f"metrics/explain/{model}.json",
            {"source": source, "model": model, "sets": sets, "activations": activations},
        )
        for s in ("test", "test2"):
            _png(root / f"plots/explain/{model}/{s}.png", 90)
            _png(root / f"plots/explain/{model}/activations_{s}.png", 100)
    for metric, values in (("accuracy", (0.3, 0.5, 0.7)), ("loss", (1.9, 1.5, 1.1))):
        tsv = root / f"dvclive/train/plots/metrics/train/{metric}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"{step}\t{v}\n" for step, v in enumerate(values, start=1))
        tsv.write_text(f"step\t{metric}\n{rows}")
    for name in (
        "train/loss",
        "train/accuracy",
        "improve/accuracy",
        "compare/recall",
        "cost/accuracy_vs_gflops",
    ):
        _png(root / f"plots/{name}.png", 150)
    return root


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def _images(page: str) -> list[str]:
    parser = _Images()
    parser.feed(page)
    return parser.sources


def test_the_page_shows_the_numbers_of_the_files_and_names_them(tmp_path):
    root = write_run(tmp_path)
    page, read = build_report(root)
    assert "SYNTHETIC stand-in" in page
    assert "61.23%" in page  # baseline PrivateTest accuracy, metrics/eval + train.json
    # the train split at the kept epoch (2) comes from DVCLive's file: 0.5 and 1.5
    assert re.search(r"train \(augmented\)</td><td>50\.00%</td><td>1\.5000", page)
    # the efficiency arithmetic, with TTA charged its views
    assert "61.23 / 0.01638 = <b>3738.1</b>" in page
    assert "2 x 0.01638 = 0.03276 GFLOPs" in page
    assert "sad.png" in page and "WRONG" in page
    for name in (
        "metrics/eval/improved_private_test.json",
        "metrics/cost.json",
        "plots/explain/baseline/activations_test2.png",
        "dvclive/train/plots/metrics/train/loss.tsv",
    ):
        assert name in read and f"<code>{name}</code>" in page

    # a changed metric file changes the page
    path = root / "metrics/eval/baseline_private_test.json"
    data = json.loads(path.read_text())
    data["per_class"]["fear"]["recall"] = 0.987
    path.write_text(json.dumps(data))
    changed, _ = build_report(root)
    assert "0.987" in changed and "0.987" not in page


def test_every_image_is_inline_and_the_page_says_which_are_missing(tmp_path):
    root = write_run(tmp_path)
    page, _ = build_report(root)
    sources = _images(page)
    # 4 confusion matrices, 2 models x 2 sets x (Grad-CAM + activations), 2 curves,
    # recall and improve curves, the cost figure
    assert len(sources) == 4 + 8 + 2 + 2 + 1
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    (root / "plots/cost/accuracy_vs_gflops.png").unlink()
    page, read = build_report(root)
    assert "missing figure: <code>plots/cost/accuracy_vs_gflops.png</code>" in page
    assert "plots/cost/accuracy_vs_gflops.png" not in read


def test_kept_start_is_said_plainly_and_a_real_run_has_no_warning(tmp_path):
    page, _ = build_report(write_run(tmp_path / "a", source="real", kept_start=True))
    assert "The improved model is the starting model" in page
    assert "FER2013 (real)" in page and "SYNTHETIC" not in page
    page, _ = build_report(write_run(tmp_path / "b"))
    assert "The improved model is the starting model" not in page
    assert "Kept improve epoch 1 of 2" in page
    # logit adjustment on the kept starting weights: the improved model is not the baseline
    for root, kept in ((tmp_path / "c", True), (tmp_path / "d", False)):
        write_run(root, source="real", kept_start=kept)
        improve = json.loads((root / "metrics/improve.json").read_text())
        improve["logit_adjustment"] = {"tau": 0.85}
        (root / "metrics/improve.json").write_text(json.dumps(improve))
        page, card = build_report(root)[0], model_card(root)
        assert "equal for that reason" not in page and "equals `baseline`" not in card
        assert "minus 0.85 x log prior" in page and "minus 0.85 x log prior" in card
    assert "starting model with its logits adjusted" in build_report(tmp_path / "c")[0]
    improve["logit_adjustment"] = {"kind": "biases", "tau": 0.0, "offsets": {"Disgust": 0.4}}
    (tmp_path / "d/metrics/improve.json").write_text(json.dumps(improve))
    page, card = build_report(tmp_path / "d")[0], model_card(tmp_path / "d")
    assert "per-class offsets Disgust +0.4" in page and "per-class offsets Disgust +0.4" in card


def test_a_missing_or_stale_file_is_an_error_naming_it(tmp_path):
    root = write_run(tmp_path)
    (root / "metrics/improve.json").unlink()
    with pytest.raises(ReportError, match=r"metrics/improve\.json: not found"):
        build_report(root)
    root = write_run(tmp_path / "stale")
    summary = json.loads((root / "metrics/summary.json").read_text())
    (root / "metrics/summary.json").write_text(json.dumps({**summary, "source": "real"}))
    with pytest.raises(ReportError, match="stale"):
        build_report(root)


def test_a_run_without_tta_has_a_page_and_a_card(tmp_path):
    root = write_run(tmp_path)
    for path in [
        *root.glob("metrics/eval/*.json"),
        root / "metrics/cost.json",
        root / "metrics/summary.json",
    ]:
        data = json.loads(path.read_text())
        data.pop("tta", None)
        for part in data.values():  # cost and summary: per model, per split
            if isinstance(part, dict):
                part.pop("tta", None)
                for split in ("public", "private"):
                    if isinstance(part.get(split), dict):
                        part[split].pop("tta_accuracy", None)
        path.write_text(json.dumps(data))
    page, _ = build_report(root)
    headline = page.split("<nav>")[0]
    assert "with TTA" not in headline and "</b>, improved <b>" in headline
    card = model_card(root)
    header = parse_front_matter(card)
    assert [len(entry["results"]) for entry in header["model-index"]] == [1, 1]
    assert "test-time augmentation" not in card  # no paragraph about what was not done


def test_ablation_tables_are_shown_when_there_are_some(tmp_path):
    root = write_run(tmp_path)
    page, _ = build_report(root)
    assert "No ablation under" in page
    table = root / "ablation/recipe/table.md"
    table.parent.mkdir(parents=True)
    table.write_text(
        "Ablation `recipe`.\n\n| row | Δ |\n|---|---|\n| 1 ema | -3.2 **outside noise** |\n"
    )
    _png(root / "ablation/recipe/frontier.png", 70)
    page, read = build_report(root)
    assert "<td>-3.2 <b>outside noise</b></td>" in page
    assert "ablation/recipe/table.md" in read and "ablation/recipe/frontier.png" in read
    assert 'class="freshness unknown">Table freshness unknown: not checked' in page
    stale = ("stale", "stale: 2 of its 2 runs were made on other code")
    page, _ = build_report(root, {"recipe": stale})
    assert '<p class="freshness stale">Table stale: 2 of its 2 runs were made on' in page


def test_markdown_tables_drop_the_rule_row_and_escape_html():
    out = markdown_to_html("| a | b |\n|---|---:|\n| <x> | `y` |\n")
    assert out == (
        "<table><thead><tr><th>a</th><th>b</th></tr></thead>"
        "<tbody><tr><td>&lt;x&gt;</td><td><code>y</code></td></tr></tbody></table>"
    )


def test_the_model_card_front_matter_parses_and_equals_the_summary(tmp_path):
    root = write_run(tmp_path, source="real")
    card = model_card(root)
    header = parse_front_matter(card)
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert header["license"] == "mit" and "fer2013" in header["tags"]
    assert "&id" not in card  # no YAML anchors
    for entry, model in zip(header["model-index"], MODELS, strict=True):
        assert entry["name"] == f"ferx-mini_xception-{model}"
        single, _ = entry["results"]
        assert single["dataset"] == {"name": "FER2013", "type": "fer2013", "split": "PrivateTest"}
        values = {m["name"]: m["value"] for r in entry["results"] for m in r["metrics"]}
        private = summary[model]["private"]
        assert values == {
            "PrivateTest accuracy (single view)": private["accuracy"],
            "PrivateTest macro-F1": private["macro_f1"],
            "PrivateTest accuracy with TTA (flip, 2 views)": private["tta_accuracy"],
        }
    for section in (
        "## Intended use",
        "## Out-of-scope use",
        "## Training data",
        "## How the models were selected",
        "## Limitations",
        "## Efficiency",
    ):
        assert section in card
    assert "| fear | 0.600 | 0.500 |" in card  # per class, from metrics/eval
    assert "TTA (test-time augmentation) averages the predictions" in card
    assert "Trained on the" not in card


def test_a_synthetic_model_card_says_so_and_claims_no_fer2013(tmp_path):
    card = model_card(write_run(tmp_path))
    header = parse_front_matter(card)
    assert "Trained on the synthetic stand-in, not FER2013" in card
    assert header["datasets"] == [] and "fer2013" not in header["tags"]
    assert header["model-index"][0]["results"][0]["dataset"]["type"] == "synthetic"


def test_the_report_stage_imports_no_torch():
    code = "import sys, stages.report; assert 'torch' not in sys.modules, 'torch imported'"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_page_opens_offline_in_chromium_without_errors(tmp_path):
    page, _ = build_report(write_run(tmp_path))
    path = tmp_path / "report/index.html"
    path.parent.mkdir()
    path.write_text(page)
    dom, errors = offline_dom(path)
    assert errors == []
    for section in ("data", "training", "evaluation", "explanations", "improve", "cost"):
        assert f'<section id="{section}">' in dom
    assert dom.count("<img") == len(_images(page))


def test_the_page_and_the_card_say_how_each_model_trained(tmp_path):
    root = write_run(tmp_path)
    how = (
        "trained in bf16 autocast (this CPU has AMX) on Intel(R) Xeon(R) Processor "
        "(CPU AVX512 + AMX, 2 threads)"
    )
    page, _ = build_report(root)
    assert f"; {how}.</p>" in page
    assert f"How they trained: baseline {how}." in model_card(root)  # improve.json: older
    improve = json.loads((root / "metrics/improve.json").read_text())
    improve["reproducibility"] = {**BITS, "precision": "fp32", "precision_reason": "set explicitly"}
    (root / "metrics/improve.json").write_text(json.dumps(improve))
    card = model_card(root)
    assert f"baseline {how}; improved trained in fp32 (set explicitly) on " in card
    improve["reproducibility"] = BITS
    (root / "metrics/improve.json").write_text(json.dumps(improve))
    assert f"How they trained: both {how}." in model_card(root)


def test_the_card_states_the_recipe_of_params_train(tmp_path):
    from ferx.params import Params

    root = write_run(tmp_path)
    assert "recipe (" not in model_card(root)  # no params given: no recipe claimed
    train = Params().train
    card = model_card(root, train)
    assert (
        "Baseline recipe (params.yaml `train`; improve fine-tunes it by its own `improve` "
        "section, with the same network and augmentation): mini_xception (module widths 32, "
        "64, 128, 256; ECA channel attention in each residual module); 40 epochs of adam "
        "(learning rate 0.001, cosine schedule, weight decay 0, batch 32, label smoothing 0.1, "
        "weight EMA off), epoch kept "
        "on PublicTest accuracy; augmentation: horizontal flips, rotations up to 10 degrees, "
        "shifts up to 10 %, zoom up to ±10 %, whole faces, random erasing off, mixup off, "
        "CutMix off." in card
    )
    stronger = train.model_copy(
        update={
            "model": train.model.model_copy(update={"attention": "se"}),
            "augment": train.augment.model_copy(
                update={"mixup": 0.2, "crop": 40, "rotate_deg": 0, "translate": 0, "scale": 0}
            ),
            "ema": 0.999,
            "ema_warmup": True,
            "patience": 5,
            "warmup_epochs": 2,
        }
    )
    card = model_card(root, stronger)
    assert "squeeze-and-excitation in each residual module" in card
    plain = train.model_copy(update={"model": train.model.model_copy(update={"attention": "none"})})
    assert "(module widths 32, 64, 128, 256; no channel attention)" in model_card(root, plain)
    assert "no rotations, no shifts, no zoom, random 40-pixel crops" in card
    assert "mixup alpha 0.2, CutMix off" in card
    assert "up to 40 epochs (early stopping after 5 without gain) of adam" in card
    assert "cosine schedule, 2 warm-up epochs," in card and "weight EMA 0.999, warmed up" in card
    both = stronger.model_copy(
        update={"augment": stronger.augment.model_copy(update={"cutmix": 1.0})}
    )
    assert "mixup (alpha 0.2) or CutMix (alpha 1), one per batch" in model_card(root, both)
    resnet = train.model_copy(
        update={"model": train.model.model_copy(update={"arch": "resnet18", "attention": "none"})}
    )
    assert "augmentation): resnet18; 40 epochs" in model_card(root, resnet)


def test_the_report_stage_gives_the_card_its_params(tmp_path, monkeypatch):
    import stages.report

    seen = {}
    monkeypatch.setattr(stages.report, "build_report", lambda root, fresh: ("<html/>", []))
    monkeypatch.setattr(
        stages.report, "model_card", lambda root, train_params: seen.setdefault("t", train_params)
    )
    monkeypatch.setattr(stages.report, "write_atomic", lambda path, write: None)
    from ferx.params import Params

    params = Params()
    monkeypatch.chdir(tmp_path)
    stages.report.main(params)
    assert seen["t"] is params.train
