"""dvc stage `compare`: baseline vs improved on PublicTest and PrivateTest, and the headline
metrics file (`metrics/summary.json`) that `dvc exp show` lists."""

from ferx import paths
from ferx.analysis.compare import (
    compare,
    load_eval,
    load_reports,
    markdown_table,
    plot_recall,
    recall_records,
    summary,
)
from ferx.atomic import write_atomic, write_json
from ferx.cli import run_stage
from ferx.params import Params


def main(params: Params) -> None:
    del params  # validated like every stage's; compare itself has no knobs
    reports = load_reports()
    result = compare(reports)
    write_json(paths.COMPARE, result)
    write_json(paths.RECALL_RECORDS, recall_records(result))
    plot_recall(result, paths.RECALL_FIGURE)
    runs = {
        "baseline": load_eval(paths.TRAIN.metrics_path),
        "improved": load_eval(paths.IMPROVE.metrics_path),
    }
    table = markdown_table(result, runs["improved"])
    write_atomic(paths.COMPARE_TABLE, lambda tmp: tmp.write_text(table))
    costs = load_eval(paths.COST)
    write_json(paths.SUMMARY, summary(reports, runs, costs))
    print(table)


if __name__ == "__main__":
    run_stage(main)
