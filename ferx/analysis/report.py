"""The run as one page to hand in: `report/index.html`, written from the run's own paths.

Every section names the files its numbers and figures come from; figures are embedded (PNG as
data URIs), so the page is one file that opens offline. Reads JSON, TSV, Markdown and PNG only:
no torch, no stage is rerun. A required file that is missing is an error naming it; what a run
may lack (user probes, ablation tables) is left out with a line saying so.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ferx import paths
from ferx.analysis.adjustment import adjustment_phrase
from ferx.analysis.markdown_html import inline_markdown, markdown_to_html
from ferx.analysis.report_style import STYLE
from ferx.analysis.run_files import ReportError, RunFiles
from ferx.cpu import machine_label
from ferx.labels import CLASS_NAMES, PROBE_SETS

__all__ = ["ReportError", "build_report", "markdown_to_html", "trained_how"]

MODELS = paths.MODEL_NAMES
EVAL_SPLITS = (("public_test", "PublicTest"), ("private_test", "PrivateTest"))


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[Any]], raw: bool = False) -> str:
    cell = (lambda v: str(v)) if raw else _e
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, body: str, sources: list[str]) -> str:
    named = ", ".join(f"<code>{_e(f)}</code>" for f in sources) or "none"
    return (
        f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}'
        f'<p class="sources">From: {named}</p></section>'
    )


# ---- sections ---------------------------------------------------------------------------


def _data(src: RunFiles) -> tuple[str, str]:
    start = len(src.read)
    prep = src.json(paths.PREPARE_SUMMARY)
    counts = prep["counts"]
    splits = [s for s in ("train", "public_test", "private_test") if s in counts]
    titles = {"train": "Training", "public_test": "PublicTest", "private_test": "PrivateTest"}
    rows = [[name] + [counts[s].get(name, 0) for s in splits] for name in CLASS_NAMES]
    rows.append(["total"] + [counts[s]["total"] for s in splits])
    body = (
        f"<p>Input: <code>{_e(prep.get('input'))}</code>, sha256 "
        f"<code>{_e(prep.get('sha256') or 'none (drawn, not read)')}</code>, "
        f"{prep.get('rows', 'n/a')} faces.</p>"
        + _table(["class"] + [titles[s] for s in splits], rows)
    )
    return prep["source"], _section("data", "Data", body, src.since(start))


def trained_how(run: dict[str, Any]) -> str:
    """How a training ran, for a reader: its precision (train.precision as resolved on that
    machine, and why) and the machine, from the `reproducibility` record of its metrics file
    ('' for a file written before ferx recorded it)."""
    bits = run.get("reproducibility") or {}
    if "precision" not in bits:
        return ""
    precision = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(
        bits["precision"], bits["precision"]
    )
    why = bits.get("precision_reason")
    where = " ".join(part for part in (bits.get("cpu"), f"({machine_label(bits)})") if part)
    return f"trained in {precision}" + (f" ({why})" if why else "") + f" on {where}"


def _kept_row(src: RunFiles, run: paths.TrainingOutputs, epoch: int) -> dict[str, float | None]:
    # the training split's accuracy and loss at the kept epoch, from DVCLive's per-epoch files
    out: dict[str, float | None] = {}
    for metric in ("accuracy", "loss"):
        rows = src.tsv(run.live_series("train", metric))
        value = next((float(r[metric]) for r in rows if int(r["step"]) == epoch), None)
        out[metric] = value
    return out


def _training(src: RunFiles) -> str:
    start = len(src.read)
    train = src.json(paths.TRAIN.metrics_path)
    epoch = int(train["best_epoch"])
    kept = _kept_row(src, paths.TRAIN, epoch)
    rows = [
        ["train (augmented)", _pct(kept["accuracy"]), _num(kept["loss"])],
        ["PublicTest", _pct(train["public"]["accuracy"]), _num(train["public"]["loss"])],
        ["PrivateTest", _pct(train["private"]["accuracy"]), _num(train["private"]["loss"])],
    ]
    body = (
        f"<p>Kept epoch: <b>{epoch}</b> of {train['epochs_run']}, the best "
        f"<b>{_e(train['select_metric'])}</b>; PrivateTest chose nothing and is reported. "
        f"{train['seconds_per_epoch']} s per epoch, {train['seconds'] / 60:.1f} min in all"
        + (f"; {_e(how)}" if (how := trained_how(train)) else "")
        + ".</p>"
        + _table(["split (kept epoch)", "accuracy", "cross-entropy loss"], rows)
        + '<div class="row">'
        + src.image(paths.TRAIN.curve_figure("loss"), "loss per epoch")
        + src.image(paths.TRAIN.curve_figure("accuracy"), "accuracy per epoch")
        + "</div>"
    )
    return _section("training", "Training", body, src.since(start))


def _evaluation(src: RunFiles) -> str:
    start = len(src.read)
    evals = {(m, s): src.json(paths.evaluation(m, s)) for m in MODELS for (s, _) in EVAL_SPLITS}
    summary_rows = []
    for (model, split), e in evals.items():
        tta = e.get("tta") or {}
        summary_rows.append(
            [
                model,
                dict(EVAL_SPLITS)[split],
                _pct(e["accuracy"]),
                _pct(e["macro_f1"]),
                _pct(e["balanced_accuracy"]),
                _pct(tta.get("accuracy")) + (f" ({tta['n_views']} views)" if tta else ""),
                _num(e["loss"]),
            ]
        )
    body = _table(
        ["model", "split", "accuracy", "macro-F1", "balanced acc.", "TTA accuracy", "loss"],
        summary_rows,
    )
    for model in MODELS:
        for split, title in EVAL_SPLITS:
            e = evals[(model, split)]
            rows = [
                [
                    name,
                    _num(c["precision"], 3),
                    _num(c["recall"], 3),
                    _num(c["f1"], 3),
                    c["support"],
                ]
                for name, c in e["per_class"].items()
            ]
            body += (
                f"<h3>{_e(model)}, {title}</h3>"
                '<div class="row"><div>'
                + _table(["class", "precision", "recall", "F1", "support"], rows)
                + "</div>"
                + src.image(paths.confusion_figure(model, split), "confusion matrix")
                + "</div>"
            )
    return _section("evaluation", "Evaluation", body, src.since(start))


def _explanations(src: RunFiles) -> str:
    start = len(src.read)
    body = (
        "<p>Grad-CAM, guided backpropagation and guided Grad-CAM for the predicted class on "
        "each probe folder (a red title marks a wrong prediction); then, per block of the "
        "network, the feature maps with the highest mean activation for the folder's first "
        "face.</p>"
    )
    for model in MODELS:
        record = src.json(paths.explanation(model))
        for name, probe_set in record["sets"].items():
            rows = [
                [
                    img["file"],
                    img["true"],
                    img["predicted"],
                    f"{img['probabilities'][img['predicted']]:.2f}",
                    "yes" if img["correct"] else "<b class='wrong'>WRONG</b>",
                ]
                for img in probe_set["images"]
            ]
            rows = [[_e(v) for v in r[:4]] + [r[4]] for r in rows]
            wrong = [img["file"] for img in probe_set["images"] if not img["correct"]]
            verdict = f"wrong: {_e(', '.join(wrong))}" if wrong else "every face right"
            body += (
                f"<h3>{_e(model)} on <code>{_e(name)}</code> "
                f"({_pct(probe_set['share_correct'], 0)} correct; {verdict})</h3>"
                '<div class="row"><div>'
                + _table(["file", "true", "predicted", "p", "right"], rows, raw=True)
                + "</div>"
                + src.image(paths.gradcam_figure(model, name), f"Grad-CAM {name}")
                + "</div>"
            )
            activation = (record.get("activations") or {}).get(name)
            if activation:
                body += src.image(activation["figure"], f"activations {name}")
        if not any(name not in PROBE_SETS for name in record["sets"]):
            body += f"<p>{_e(model)}: no user probes (explain.user_probes was empty).</p>"
    return _section("explanations", "Explanations", body, src.since(start))


def _improve(src: RunFiles) -> str:
    start = len(src.read)
    improve = src.json(paths.IMPROVE.metrics_path)
    compare = src.json(paths.COMPARE)
    phrase = adjustment_phrase(improve.get("logit_adjustment"))
    if improve.get("kept_start") and phrase:
        kept = (
            "<p class='note'><b>The improved model is the starting model with its logits "
            f"adjusted</b> ({_e(phrase)}): no "
            f"improve epoch beat it on PublicTest {_e(improve['select_metric'].split()[-1])}"
            f"{' (none ran)' if not improve.get('epochs_run') else ''}.</p>"
        )
    elif improve.get("kept_start"):
        kept = (
            "<p class='note'><b>The improved model is the starting model</b> (epoch 0): no "
            f"improve epoch beat it on PublicTest {_e(improve['select_metric'].split()[-1])}; "
            "the before/after columns below are equal for that reason.</p>"
        )
    else:
        kept = (
            f"<p>Kept improve epoch {improve['best_epoch']} of {improve['epochs_run']}, the "
            f"best {_e(improve['select_metric'])}"
            + (f", then its logits adjusted ({_e(phrase)})" if phrase else "")
            + ".</p>"
        )
    settings = (
        f"<p>Class weighting <b>{_e(improve['weighting'])}</b>, start "
        f"<b>{_e(improve['init'])}</b>, retrained <b>{_e(improve['retrain'])}</b>; weights per "
        "class: " + ", ".join(f"{_e(k)} {v}" for k, v in improve["class_weights"].items()) + ".</p>"
    )
    rows = []
    for name in CLASS_NAMES:
        row = [f"recall {name}"]
        for split in ("public", "private"):
            before = compare[split]["baseline"]["recall"][name]
            after = compare[split]["improved"]["recall"][name]
            row += [_num(before, 3), _num(after, 3), f"{100 * (after - before):+.1f} pt"]
        rows.append(row)
    for metric in ("accuracy", "macro_f1"):
        row = [metric.replace("_", "-")]
        for split in ("public", "private"):
            before, after = (compare[split][m][metric] for m in MODELS)
            row += [_num(before, 3), _num(after, 3), f"{100 * (after - before):+.1f} pt"]
        rows.append(row)
    header = ["", "PublicTest before", "after", "change", "PrivateTest before", "after", "change"]
    body = (
        kept
        + settings
        + _table(header, rows)
        + '<div class="row">'
        + src.image(paths.RECALL_FIGURE, "recall per class before and after")
        + src.image(paths.IMPROVE.curve_figure("accuracy"), "improve accuracy per epoch")
        + "</div>"
    )
    return _section("improve", "Improve: class-reweighted retraining", body, src.since(start))


def _cost(src: RunFiles) -> str:
    start = len(src.read)
    cost = src.json(paths.COST)
    rows = []
    arithmetic = []
    for model in MODELS:
        c = cost[model]
        acc = 100 * c["private_accuracy"]
        rows.append(
            [
                model,
                f"{c['gflops']:.5f}",
                f"{c['parameters']:,}",
                f"{c['latency_ms_batch1']} ms",
                f"{c['throughput_img_s']} img/s",
                f"{c['efficiency']:.1f}",
            ]
        )
        arithmetic.append(
            f"{_e(model)}: {acc:.2f} / {c['gflops']:.5f} = <b>{c['efficiency']:.1f}</b>"
        )
        tta = c.get("tta")
        if tta:
            arithmetic.append(
                f"{_e(model)} with TTA ({_e(tta['views'])}, {tta['n_views']} views, "
                f"{tta['n_views']} x {c['gflops']:.5f} = {tta['gflops']:.5f} GFLOPs): "
                f"{100 * tta['private_accuracy']:.2f} / {tta['gflops']:.5f} = "
                f"<b>{tta['efficiency']:.1f}</b>"
            )
    body = (
        f"<p>FLOPs per face by fvcore ({_e(cost.get('note', ''))}); latency and throughput on "
        f"{cost[MODELS[0]].get('threads', '?')} threads of this machine.</p>"
        + _table(
            ["model", "GFLOPs", "parameters", "latency (batch 1)", "throughput", "efficiency"],
            rows,
        )
        + "<p>Efficiency = PrivateTest accuracy % / GFLOPs:</p><ul>"
        + "".join(f"<li>{a}</li>" for a in arithmetic)
        + "</ul>"
        + src.image(paths.COST_FIGURE, "accuracy against GFLOPs")
    )
    return _section("cost", "Cost and efficiency", body, src.since(start))


def _ablations(src: RunFiles, freshness: dict[str, tuple[str, str]]) -> str:
    """Each committed table with its frontier, labelled current or stale (freshness: study
    name -> (state, one line), from ferx.experiments.freshness)."""
    start = len(src.read)
    tables = sorted(src.path(paths.ABLATIONS).glob(f"*/{paths.ABLATION_TABLE}"))
    if not tables:
        body = (
            f"<p>No ablation under <code>{paths.ABLATIONS}/</code> "
            "(see <code>ferx-ablate</code>).</p>"
        )
        return _section("ablations", "Ablations", body, [])
    body = ""
    for table in tables:
        name = table.parent.name
        relative = paths.ablation_table(name)
        src._note(relative)
        state, note = freshness.get(name, ("unknown", "freshness unknown: not checked"))
        body += f"<h3><code>{_e(name)}</code></h3>"
        body += f'<p class="freshness {_e(state)}">Table {inline_markdown(note)}.</p>'
        body += markdown_to_html(table.read_text())
        body += src.image(paths.ablation_frontier(name), f"{name} frontier")
    return _section("ablations", "Ablations", body, src.since(start))


# ---- the page -----------------------------------------------------------------------------


def build_report(
    root: str | Path = ".", freshness: dict[str, tuple[str, str]] | None = None
) -> tuple[str, list[str]]:
    """The page's HTML and the files it was written from (relative to root). `freshness`
    labels each ablation table (study name -> (current | stale | unknown, one line))."""
    src = RunFiles(Path(root))
    source, data = _data(src)
    sections = [
        data,
        _training(src),
        _evaluation(src),
        _explanations(src),
        _improve(src),
        _cost(src),
        _ablations(src, freshness or {}),
    ]
    summary = src.json(paths.SUMMARY)
    if summary.get("source") != source:
        raise ReportError(
            f"{paths.SUMMARY} says source {summary.get('source')!r}, {paths.PREPARE_SUMMARY} "
            f"{source!r}: a stale file (run `dvc repro`)"
        )
    if source == "real":
        banner = '<p class="banner real">Data: FER2013 (real).</p>'
    else:
        banner = (
            f'<p class="banner synthetic">Data: {_e(source).upper()} stand-in, not FER2013. '
            "These numbers say nothing about facial-expression recognition.</p>"
        )
    b, i = summary["baseline"], summary["improved"]
    tta = b["private"].get("tta_accuracy")  # absent with evaluate.tta: none
    headline = (
        f"<p>Baseline PrivateTest accuracy <b>{_pct(b['private']['accuracy'])}</b>"
        + (f" ({_pct(tta)} with TTA)" if tta is not None else "")
        + ", improved "
        f"<b>{_pct(i['private']['accuracy'])}</b>; chosen on PublicTest "
        f"({_pct(b['public']['accuracy'])} and {_pct(i['public']['accuracy'])}). From "
        f"<code>{paths.SUMMARY}</code>.</p>"
    )
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("data", "Data"),
            ("training", "Training"),
            ("evaluation", "Evaluation"),
            ("explanations", "Explanations"),
            ("improve", "Improve"),
            ("cost", "Cost"),
            ("ablations", "Ablations"),
        )
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>ferx report ({_e(source)} data)</title><style>{STYLE}</style></head><body>"
        "<h1>ferx: mini-Xception facial-expression recognition, the run</h1>"
        f"{banner}{headline}<nav>{nav}</nav>{''.join(sections)}</body></html>\n"
    )
    return page, src.read
