"""The ablation table: one record per row, pooled over its seeds, and its markdown.

A record holds, per row, the mean and standard deviation over seeds of PublicTest and
PrivateTest accuracy and macro-F1 (from each experiment's metrics/summary.json, the numbers
`dvc exp show` lists), the commit each seed ran on, and the difference from the reference row
(row 0) on PublicTest with its 95% paired-bootstrap interval (ferx.experiments.stats).
Runs that asked for the same train.precision but trained in different ones (`auto` on unlike
CPUs), or ran on different data (FER2013 and the synthetic stand-in), are never pooled or
compared; each run's precision and machine are shown, **mixed** where a row's differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ferx.experiments.queue import Experiment, set_value
from ferx.experiments.spec import Row, Run, Spec
from ferx.experiments.stats import (
    REPLICATES,
    Difference,
    correct_from_text,
    mean_std,
    paired_bootstrap,
    paired_gain_bootstrap,
    predicted_from_text,
)
from ferx.labels import NUM_CLASSES
from ferx.params import TTA_VIEWS

# The model whose numbers a row reports unless the spec says otherwise (`model:`): the one the
# train stage makes (architecture and recipe are what most ablations vary; improve starts
# from it). A study of improve itself reports the improved model.
MODEL = "baseline"
# (record key, split, metric in summary.json): the per-seed figures a row pools
FIGURES = (
    ("public_accuracy", "public", "accuracy"),
    ("public_macro_f1", "public", "macro_f1"),
    ("private_accuracy", "private", "accuracy"),
    ("private_macro_f1", "private", "macro_f1"),
    ("public_tta_accuracy", "public", "tta_accuracy"),
    ("private_tta_accuracy", "private", "tta_accuracy"),
)
INTERVAL_NOTE = (
    "Δ: the row's PublicTest accuracy minus row 0's (mean over seeds; single view, and in its "
    "own column with TTA where the runs recorded each face's TTA result), with a 95% interval "
    f"from a paired hierarchical bootstrap ({REPLICATES:,} replicates; each resamples the "
    "PublicTest faces, the same faces for both rows, and each row's seeds, with replacement; "
    "percentile "
    "interval; Efron & Tibshirani 1993, Bouthillier et al. 2021). An interval that holds 0 "
    "is within the noise: the table cannot tell that row from row 0. With one seed it counts "
    "only the test set's noise."
)


@dataclass(frozen=True)
class Result:
    """A finished run: its experiment and, if the evaluate stage recorded it, which PublicTest
    faces its model got right (1/0, the split's order)."""

    run: Run
    experiment: Experiment
    public_correct: np.ndarray | None
    model: str = MODEL  # whose figures the row reports (the spec's `model`)
    recall: dict[str, dict[str, dict[str, float]]] | None = None  # records.Record.recall
    faces: dict[str, dict[str, str]] | None = None  # records.Record.faces (PublicTest)

    def face_record(self, field: str, model: str | None = None) -> str | None:
        """One of the evaluate stage's per-face strings of PublicTest, of `model` (the row's
        by default), where the record has it."""
        return ((self.faces or {}).get(model or self.model) or {}).get(field)


# A study of improve (model: improved) also shows what each run's improve gained over its
# own baseline (the same seed's, in the same summary.json): improved minus baseline.
# key, split, the improved model's figure, the baseline's figure it is compared with
GAINS = (
    ("public_macro_f1_gain", "public", "macro_f1", "macro_f1"),
    # a run whose improve chose logit offsets on PublicTest also records what they are worth
    # out of sample (two-fold cross-fitted on PublicTest): that minus the baseline's figure
    ("public_macro_f1_cross_fitted_gain", "public", "macro_f1_cross_fitted", "macro_f1"),
    ("private_macro_f1_gain", "private", "macro_f1", "macro_f1"),
    ("private_accuracy_gain", "private", "accuracy", "accuracy"),
)
CROSS_FITTED_GAIN = GAINS[1][0]
RECALL_GAINS = ("disgust", "fear")  # PrivateTest recall of the rare classes (the records')


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def run_gains(result: Result) -> dict[str, float | None]:
    """Improved minus baseline in one run: GAINS from its summary.json, RECALL_GAINS from its
    record's per-class recall; None where a figure is missing (an older record, or a run
    that chose no offsets: no cross-fitted figure)."""
    metrics = result.experiment.metrics or {}
    ours, theirs = metrics.get("improved") or {}, metrics.get("baseline") or {}
    gains = {
        key: _minus((ours.get(split) or {}).get(mine), (theirs.get(split) or {}).get(base))
        for key, split, mine, base in GAINS
    }
    recall = result.recall or {}
    for name in RECALL_GAINS:
        a, b = (
            ((recall.get(model) or {}).get("private_test") or {}).get(name)
            for model in ("improved", "baseline")
        )
        gains[f"private_{name}_recall_gain"] = _minus(a, b)
    return gains


GAIN_KEYS = (*(g[0] for g in GAINS), *(f"private_{n}_recall_gain" for n in RECALL_GAINS))


def run_figures(metrics: dict[str, Any] | None, name: str = MODEL) -> dict[str, float | None]:
    """The figures of model `name` in one experiment's summary.json; None where it lacks one
    (an older file)."""
    model = (metrics or {}).get(name) or {}
    figures: dict[str, Any] = {
        key: (model.get(split) or {}).get(metric) for key, split, metric in FIGURES
    }
    for key in ("gflops", "efficiency", "train_minutes"):
        figures[key] = model.get(key)
    figures["machine"] = (metrics or {}).get("machine")  # device, instruction set, threads
    return figures


def resolved_precision(result: Result) -> str | None:
    """The precision a run trained in: as its summary.json records it, else (an older file)
    as its params set it; None where neither tells (`auto` before ferx recorded it)."""
    model = (result.experiment.metrics or {}).get(result.model) or {}
    if model.get("precision"):
        return model["precision"]
    asked = (result.experiment.params.get("train") or {}).get("precision")
    return asked if asked and asked != "auto" else None


def sources(results: list[Result]) -> list[str]:
    """The data the runs ran on ("real", "synthetic"; unknown ones left out), sorted."""
    return sorted({str(s) for r in results if (s := (r.experiment.metrics or {}).get("source"))})


def asked_precision(result: Result) -> str:
    """The train.precision a run's params ask for ("auto" resolves per machine)."""
    return str((result.run.resolved.get("train") or {}).get("precision", "auto"))


def precisions(results: list[Result]) -> list[str]:
    """The resolved precisions among `results` (unknown ones left out), sorted."""
    return sorted({p for r in results if (p := resolved_precision(r)) is not None})


def _pooled(values: list[float | None]) -> dict[str, float] | None:
    if not values or any(v is None for v in values):
        return None
    mean, std = mean_std([float(v) for v in values])  # type: ignore[arg-type]
    return {"mean": mean, "std": std}


def _difference(
    row: list[Result], reference: list[Result], field: str = "correct"
) -> Difference | None:
    """Row minus row 0 in PublicTest accuracy (single view, or TTA: "tta_correct")."""
    if not row or not reference:
        return None
    if field == "correct":
        parts = [r.public_correct for r in row], [r.public_correct for r in reference]
    else:
        parts = tuple(
            [None if (t := r.face_record(field)) is None else correct_from_text(t) for r in side]
            for side in (row, reference)
        )
    if any(c is None for side in parts for c in side):
        return None
    lengths = {len(c) for side in parts for c in side}  # type: ignore[arg-type]
    if len(lengths) != 1:
        return None
    return paired_bootstrap(np.stack(parts[0]), np.stack(parts[1]))


def row_record(
    row: Row,
    runs: list[Run],
    results: list[Result],
    reference: list[Result],
    labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """A row's record: its runs, and their figures pooled over seeds with the difference from
    row 0, where they may be: runs that trained in different precisions although they asked
    for the same one (train.precision: auto on unlike CPUs) are never pooled or compared. A
    row that asks for another precision than row 0 (a factor that sets train.precision) is
    compared with it: that difference is what the spec studies."""
    missing = [run.name for run in runs if run.name not in {r.run.name for r in results}]
    record: dict[str, Any] = {"row": row.index, "label": row.label, "on": dict(row.on)}
    record["status"] = "done" if not missing else "incomplete"
    record["seeds"] = [r.run.seed for r in results]
    record["runs"] = [
        {
            "seed": r.run.seed,
            "experiment": r.experiment.name,
            "commit": r.experiment.baseline[:7],
            "source": (r.experiment.metrics or {}).get("source"),
            **run_figures(r.experiment.metrics, r.model),
            "precision": resolved_precision(r),
            **(run_gains(r) if r.model == "improved" else {}),
        }
        for r in results
    ]
    if missing:
        record["missing"] = missing
    if not results:
        return record
    ours = precisions(results)
    if len(ours) == 1:
        record["precision"] = ours[0]
    machines = sorted({str(run["machine"]) for run in record["runs"] if run["machine"]})
    if machines:
        record["machines"] = machines  # more than one: the seeds' bits came from unlike setups
    data = sources(results)
    if len(data) > 1:  # FER2013 and the synthetic stand-in: numbers of two different tasks
        record["status"] = "mixed data" + (", incomplete" if missing else "")
        record["not_pooled"] = f"its runs ran on {' and '.join(data)} data: not pooled"
        return record
    if len(ours) > 1:
        record["status"] = "mixed precision" + (", incomplete" if missing else "")
        record["not_pooled"] = (
            f"its runs trained in {' and '.join(ours)} (train.precision: auto resolves per "
            "machine): not pooled"
        )
        return record
    for key in [k for k, _, _ in FIGURES] + ["gflops", "efficiency", "train_minutes"]:
        pooled = _pooled([run[key] for run in record["runs"]])
        if pooled is not None:
            record[key] = pooled
    for key in GAIN_KEYS:
        values = [run.get(key) for run in record["runs"]]
        pooled = _pooled(values)
        if pooled is not None:  # with the worst seed's: the rule of a study may ask for it
            record[key] = pooled | {"min": min(values)}  # type: ignore[type-var]
    tta = {(r.experiment.params.get("evaluate") or {}).get("tta") for r in results}
    if (
        "public_tta_accuracy" in record
        and "gflops" in record
        and len(tta) == 1
        and (name := tta.pop())
    ):
        record["tta"] = name
        record["tta_gflops"] = record["gflops"]["mean"] * TTA_VIEWS.get(name, 1)
    theirs, their_data = precisions(reference), sources(reference)
    same_ask = {asked_precision(r) for r in results} == {asked_precision(r) for r in reference}
    if row.index > 0 and (len(theirs) > 1 or len(their_data) > 1):
        record["not_compared"] = "row 0's runs are not pooled (mixed precision or data)"
    elif row.index > 0 and their_data and data != their_data:
        record["not_compared"] = f"row 0 ran on {their_data[0]} data, this row on {data[0]}"
    elif row.index > 0 and same_ask and len(ours) == len(theirs) == 1 and ours != theirs:
        record["not_compared"] = f"row 0 trained in {theirs[0]}, this row in {ours[0]}"
    elif row.index > 0:
        for key, field in (("public_delta", "correct"), ("public_tta_delta", "tta_correct")):
            if (difference := _difference(results, reference, field)) is not None:
                record[key] = _interval(difference)
    gain = None
    if labels is not None and "public_macro_f1_gain" in record:
        gain = _gain_interval(results, labels)
    if gain is not None:
        record["public_macro_f1_gain"] |= gain
    return record


def _interval(difference: Difference) -> dict[str, Any]:
    return {
        "mean": difference.mean,
        "low": difference.low,
        "high": difference.high,
        "within_noise": difference.within_noise,
    }


def _gain_interval(results: list[Result], labels: np.ndarray) -> dict[str, Any] | None:
    """The 95% interval of improve's PublicTest macro-F1 gain over its own baseline (a paired
    bootstrap over faces and seeds from each face's predicted class), when every run of the
    row recorded both models' predictions on the faces `labels` labels."""
    pairs = [(r.face_record("predicted", "improved"), r.face_record("predicted", "baseline"))
             for r in results]  # fmt: skip
    if not pairs or any(a is None or b is None for a, b in pairs):
        return None
    if {len(text) for pair in pairs for text in pair} != {len(labels)}:  # other faces
        return None
    ours = np.stack([predicted_from_text(a) for a, _ in pairs])  # type: ignore[arg-type]
    theirs = np.stack([predicted_from_text(b) for _, b in pairs])  # type: ignore[arg-type]
    if ours.shape[1] != len(labels):
        return None
    found = paired_gain_bootstrap(ours, theirs, labels, NUM_CLASSES)["macro_f1"]
    return {"low": found.low, "high": found.high, "within_noise": found.within_noise}


def table_records(
    runs: list[Run], results: list[Result], labels: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One record per row; `labels` (PublicTest's, in the split's order), when given, adds the
    interval of improve's macro-F1 gain to a study of improve."""
    by_row: dict[int, list[Run]] = {}
    for run in runs:
        by_row.setdefault(run.row.index, []).append(run)
    done = {r.run.name: r for r in results}
    pooled = {i: [done[r.name] for r in rs if r.name in done] for i, rs in by_row.items()}
    reference = pooled.get(0, [])
    rows = {run.row.index: run.row for run in runs}
    return [row_record(rows[i], by_row[i], pooled[i], reference, labels) for i in sorted(rows)]


def precision_note(results: list[Result]) -> str | None:
    """One line when runs that asked for the same train.precision trained in different ones:
    `auto` resolved differently on the unlike CPUs they ran on."""
    by_ask: dict[str, list[Result]] = {}
    for result in results:
        by_ask.setdefault(asked_precision(result), []).append(result)
    mixed = {ask: found for ask, rs in by_ask.items() if len(found := precisions(rs)) > 1}
    if not mixed:
        return None
    ask, found = next(iter(mixed.items()))
    return (
        f"runs of this study that ask for train.precision: {ask} trained in "
        f"{' and '.join(found)}: it resolved differently on the CPUs they ran on (bf16 where "
        "bf16 is native, else fp32), so those runs are neither pooled nor compared. Set "
        "train.precision in the spec's base to one value (new runs, all in that precision), "
        "or drop the other kind's records from runs.json and rerun on one kind of CPU"
    )


def _pct(figure: dict[str, float] | None, seeds: int) -> str:
    if figure is None:
        return ""
    text = f"{100 * figure['mean']:.2f}"
    return text + (f" ± {100 * figure['std']:.2f}" if seeds > 1 else "")


def _delta(delta: dict[str, Any] | None) -> str:
    if delta is None:
        return ""
    text = f"{100 * delta['mean']:+.2f} [{100 * delta['low']:+.2f}, {100 * delta['high']:+.2f}]"
    return text + (" within noise" if delta["within_noise"] else " **outside noise**")


def _gain(figure: dict[str, Any] | None, worst: bool = False) -> str:
    """Points gained by improve over its own baseline, mean over seeds (and the worst seed),
    with its 95% interval where the table has one."""
    if figure is None:
        return ""
    text = f"{100 * figure['mean']:+.2f}"
    text += f" ({100 * figure['min']:+.2f})" if worst else ""
    if "low" in figure:
        text += f" [{100 * figure['low']:+.2f}, {100 * figure['high']:+.2f}]"
    return text


def _trained(record: dict[str, Any]) -> str:
    """The precision and machine a row's runs trained in and on, **mixed** where they differ."""
    kinds = sorted({run["precision"] for run in record["runs"] if run.get("precision")})
    machines = record.get("machines") or []
    parts = [
        ("**mixed**: " if len(values) > 1 else "") + " / ".join(values)
        for values in (kinds, machines)
        if values
    ]
    return "; ".join(parts)


def _spec_settings(spec: Spec) -> tuple[str, str]:
    settings = "; ".join(
        f"{f}: " + ", ".join(f"{k}={set_value(v)}" for k, v in s.items())
        for f, s in spec.factors.items()
    )
    base = ", ".join(f"{k}={set_value(v)}" for k, v in spec.base.items()) or "params.yaml"
    return settings, base


def markdown(spec: Spec, records: list[dict[str, Any]]) -> str:
    factors = list(spec.factors)
    with_tta = any("tta" in r for r in records)
    head = ["row", *factors, "seeds", "PublicTest acc %", "Δ PublicTest vs row 0 (95% CI)"]
    head += ["PublicTest macro-F1 %", "PrivateTest acc %", "PrivateTest macro-F1 %"]
    gains = spec.model == "improved"
    cross_fitted = gains and any(CROSS_FITTED_GAIN in r for r in records)
    if gains:
        head += ["improve's gain, PublicTest macro-F1 (worst seed) [95% CI]"]
        head += ["the same, cross-fitted (worst seed)"] if cross_fitted else []
        head += ["PrivateTest macro-F1"]
        head += ["PrivateTest acc", "PrivateTest recall disgust / fear"]
    if with_tta:
        head += ["PublicTest TTA %", "Δ PublicTest TTA vs row 0 (95% CI)", "PrivateTest TTA %"]
    head += ["GFLOPs", "efficiency", "train min", "trained in, on", "commit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        n = len(r["seeds"])
        cells = [f"{r['row']} {r['label']}", *("Y" if r["on"][f] else "N" for f in factors)]
        cells.append(str(n))
        cells += [_pct(r.get("public_accuracy"), n), _delta(r.get("public_delta"))]
        cells += [_pct(r.get(k), n) for k in ("public_macro_f1", "private_accuracy")]
        cells += [_pct(r.get("private_macro_f1"), n)]
        if gains:
            cells += [_gain(r.get("public_macro_f1_gain"), worst=n > 1)]
            cells += [_gain(r.get(CROSS_FITTED_GAIN), worst=n > 1)] if cross_fitted else []
            cells += [_gain(r.get(k)) for k in ("private_macro_f1_gain", "private_accuracy_gain")]
            rare = [_gain(r.get(f"private_{name}_recall_gain")) for name in RECALL_GAINS]
            cells += [" / ".join(rare) if any(rare) else ""]
        if with_tta:
            cells += [_pct(r.get("public_tta_accuracy"), n), _delta(r.get("public_tta_delta"))]
            cells += [_pct(r.get("private_tta_accuracy"), n)]
        gflops, eff, minutes = (r.get(k) for k in ("gflops", "efficiency", "train_minutes"))
        cells += [f"{gflops['mean']:.5f}" if gflops else "", f"{eff['mean']:.0f}" if eff else ""]
        cells += [f"{minutes['mean']:.1f}" if minutes else "", _trained(r)]
        cells += [", ".join(sorted({run["commit"] for run in r["runs"]}))]
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({str(run["source"]) for r in records for run in r["runs"]})
    settings, base = _spec_settings(spec)
    apart = [
        f"row {r['row']}: {r.get('not_pooled') or r['not_compared']}"
        for r in records
        if r.get("not_pooled") or r.get("not_compared")
    ]
    experiments = "; ".join(
        f"row {r['row']}: " + ", ".join(run["experiment"] for run in r["runs"]) for r in records
    )
    return "\n".join(
        [
            f"Ablation `{spec.name}` ({spec.design}), the {spec.model} model of each experiment; "
            "mean ± standard deviation over seeds.",
            "",
            *lines,
            "",
            f"Data: {', '.join(sources) or 'see the experiments'}. Every row: {base}. "
            f"Factors: {settings}.",
            "PublicTest chose each run's kept epoch and is the column to choose by; PrivateTest "
            "chose nothing and is reported. Efficiency = PrivateTest accuracy % / GFLOPs "
            "(single view).",
            INTERVAL_NOTE,
            "Trained in, on: the precision each run trained in (train.precision as resolved on "
            "its machine) and the machine (device, kernels' instruction set, threads); "
            "**mixed** where a row's seeds differ in it (their bits are not comparable).",
            *(
                [
                    "Improve's gain: each run's improved model minus its own baseline (the same "
                    "seed's train stage, in the same summary.json), in points, mean over seeds "
                    "(the worst seed in parentheses); on PublicTest with a 95% interval (a "
                    "paired bootstrap of faces and seeds that recomputes macro-F1 from each "
                    "face's predicted class) where the labels were at hand; a row that chose "
                    "something on PublicTest itself (improve.logit_adjust: tuned picks tau "
                    "there, biases seven offsets) has an in-sample, optimistic PublicTest gain: "
                    "its PrivateTest gain "
                    "says how much holds, and so does its cross-fitted gain where the run "
                    "recorded one (each half of PublicTest adjusted by what the other half "
                    "chose). Recall: PrivateTest's, of Disgust and Fear."
                ]
                if gains
                else []
            ),
            *([f"Not pooled or not compared: {'; '.join(apart)}."] if apart else []),
            f"Experiments (`dvc exp show -A`, or runs.json beside this table): {experiments}.",
            "",
        ]
    )
