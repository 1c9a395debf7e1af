import pytest

from ferx.analysis.compare import compare, markdown_table, recall_records, selection_note, summary
from ferx.labels import CLASS_NAMES, SELECTION_METRICS


def _report(accuracy: float, disgust_recall: float) -> dict:
    per_class = {n: {"recall": 0.5} for n in CLASS_NAMES}
    per_class["disgust"]["recall"] = disgust_recall
    return {
        "source": "synthetic",
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.1,
        "balanced_accuracy": accuracy - 0.2,
        "per_class": per_class,
        "tta": {"views": "flip_shift", "n_views": 10, "accuracy": accuracy + 0.015},
    }


REPORTS = {
    "public": {"baseline": _report(0.60, 0.30), "improved": _report(0.61, 0.50)},
    "private": {"baseline": _report(0.64, 0.35), "improved": _report(0.62, 0.55)},
}


def test_both_splits_are_compared_with_their_own_numbers():
    result = compare(REPORTS)
    assert result["public"]["delta"]["accuracy"] == pytest.approx(0.01)
    assert result["private"]["delta"]["accuracy"] == pytest.approx(-0.02)
    assert result["public"]["delta"]["recall"]["disgust"] == pytest.approx(0.20)
    assert result["private"]["improved"]["recall"]["disgust"] == 0.55


# metrics/improve.json as the improve stage writes it: a fine-tuning run that kept its epoch 3
IMPROVE_RUN = {"select_metric": "public macro_f1", "best_epoch": 3, "kept_start": False}


def test_table_puts_public_test_beside_private_test():
    lines = markdown_table(compare(REPORTS), IMPROVE_RUN).splitlines()
    assert "PublicTest baseline" in lines[0] and "PrivateTest change" in lines[0]
    assert lines[0].index("PublicTest") < lines[0].index("PrivateTest")
    accuracy = next(line for line in lines if line.startswith("| accuracy |"))
    assert [c.strip() for c in accuracy.strip("|").split("|")] == [
        "accuracy",
        "0.6000",
        "0.6100",
        "+1.0 pt",
        "0.6400",
        "0.6200",
        "-2.0 pt",
    ]
    assert lines[-1] == selection_note(IMPROVE_RUN)


# the metric names as the note spells them, written out here rather than taken from the code
METRIC_WORDS = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
}


@pytest.mark.parametrize("metric", SELECTION_METRICS)
@pytest.mark.parametrize("best_epoch", [2, 5])
def test_the_note_says_which_epoch_and_metric_chose_the_improved_model(metric, best_epoch):
    run = {"select_metric": f"public {metric}", "best_epoch": best_epoch, "kept_start": False}
    assert selection_note(run) == (
        f"The improved model is improve's epoch {best_epoch}, chosen on PublicTest "
        f"{METRIC_WORDS[metric]} (the starting baseline counted as epoch 0); "
        "PrivateTest chose nothing."
    )
    kept = {"select_metric": f"public {metric}", "best_epoch": 0, "kept_start": True}
    assert selection_note(kept) == (
        "The improved model is the starting baseline (epoch 0): no improve epoch beat it on "
        f"PublicTest {METRIC_WORDS[metric]}; PrivateTest chose nothing."
    )
    adjusted = {**kept, "logit_adjustment": {"tau": 0.65}}
    assert selection_note(adjusted) == (
        "The improved model is the starting baseline (epoch 0): no improve epoch beat it on "
        f"PublicTest {METRIC_WORDS[metric]}, then its logits adjusted: minus 0.65 x log prior "
        "(tau chosen on PublicTest macro-F1); PrivateTest chose nothing."
    )
    offsets = {"Angry": 0.0, "Disgust": 0.7, "Fear": -0.2}
    biased = {**kept, "logit_adjustment": {"kind": "biases", "tau": 0.0, "offsets": offsets}}
    assert selection_note(biased).endswith(
        "then its logits adjusted: plus per-class offsets Disgust +0.7, Fear -0.2 (chosen on "
        "PublicTest macro-F1); PrivateTest chose nothing."
    )
    unmoved = {**kept, "logit_adjustment": {"kind": "biases", "tau": 0.0, "offsets": {"Fear": 0}}}
    assert "adjusted" not in selection_note(unmoved)  # all offsets 0: the model as it was
    # init: scratch has no starting weights to count (the metrics carry no kept_start)
    scratch = {"select_metric": f"public {metric}", "best_epoch": best_epoch}
    assert selection_note(scratch) == (
        f"The improved model is improve's epoch {best_epoch}, chosen on PublicTest "
        f"{METRIC_WORDS[metric]}; PrivateTest chose nothing."
    )


def test_recall_records_name_class_model_and_split():
    records = recall_records(compare(REPORTS))
    assert len(records) == 7 * 2 * 2
    assert {"class_model": "disgust / improved / PublicTest", "recall": 0.5} in records


def test_summary_holds_the_headline_numbers_of_both_models_and_nothing_per_class():
    bits = {"device": "cpu", "cpu_capability": "AVX2", "cpu_features": ["AVX2"], "threads": 2}
    runs = {
        "baseline": {"best_epoch": 42, "seconds": 1981.0, "reproducibility": bits},
        "improved": {"best_epoch": 0, "kept_start": True, "seconds": 185.9},
    }
    runs["baseline"]["reproducibility"]["precision"] = "fp32"  # what train.precision ran as
    costs = {
        m: {"gflops": 0.005853, "parameters": 56951, "efficiency": e}
        for m, e in (("baseline", 1095.4), ("improved", 1100.0))
    }
    result = summary(REPORTS, runs, costs)
    assert result["baseline"]["precision"] == "fp32" and "precision" not in result["improved"]
    assert result["machine"] == "CPU AVX2, 2 threads"
    runs["improved"]["reproducibility"] = {**bits, "precision": "bf16"}
    assert summary(REPORTS, runs, costs)["improved"]["precision"] == "bf16"
    one = {**bits, "precision": "fp32"}
    runs["baseline"]["reproducibility"] = {
        **one,
        "mixed": True,
        "sittings": [{**one, "from_epoch": 1}, {**one, "threads": 1, "from_epoch": 3}],
    }
    mixed = summary(REPORTS, runs, costs)["machine"]
    assert mixed == "mixed: CPU AVX2, 2 threads / CPU AVX2, 1 thread"
    assert result["baseline"]["private"] == {
        "accuracy": 0.64,
        "macro_f1": 0.54,
        "disgust_recall": 0.35,
        "tta_accuracy": 0.655,  # beside the single view, never instead of it
    }
    assert result["improved"]["public"]["disgust_recall"] == 0.5
    assert result["improved"]["kept_start"] is True and "kept_start" not in result["baseline"]
    assert result["baseline"]["train_minutes"] == 33.0 and result["improved"]["best_epoch"] == 0
    assert result["improved"]["efficiency"] == 1100.0 and result["baseline"]["gflops"] == 0.00585

    def leaves(node):
        return sum(leaves(v) for v in node.values()) if isinstance(node, dict) else 1

    # the columns `dvc exp show` gets: a table that fits a screen
    assert leaves(summary(REPORTS, runs, costs)) == 31
    without_tta = {
        s: {m: {k: v for k, v in r.items() if k != "tta"} for m, r in by.items()}
        for s, by in REPORTS.items()
    }
    assert "tta_accuracy" not in summary(without_tta, runs, costs)["baseline"]["public"]
    # a logit adjustment's out-of-sample worth, beside its in-sample PublicTest figures
    assert "macro_f1_cross_fitted" not in result["improved"]["public"]
    runs["improved"]["logit_adjustment"] = {"public_cross_fitted": {"macro_f1": 0.512345}}
    adjusted = summary(REPORTS, runs, costs)
    assert adjusted["improved"]["public"]["macro_f1_cross_fitted"] == 0.5123
    assert "macro_f1_cross_fitted" not in adjusted["improved"]["private"]
