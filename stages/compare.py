"""dvc stage `compare`: baseline vs improved on PublicTest and PrivateTest, and the headline
metrics file (`metrics/summary.json`) that `dvc exp show` lists."""

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

RUNS = {"baseline": "train", "improved": "improve"}  # model -> the stage that trained it


def main(params: Params) -> None:
    del params  # validated like every stage's; compare itself has no knobs
    reports = load_reports("metrics/eval")
    result = compare(reports)
    write_json("metrics/compare.json", result)
    write_json("plots/compare/recall.json", recall_records(result))
    plot_recall(result, "plots/compare/recall.png")
    runs = {
        "baseline": load_eval("metrics/train.json"),
        "improved": load_eval("metrics/improve.json"),
    }
    table = markdown_table(result, runs["improved"])
    write_atomic("plots/compare/table.md", lambda tmp: tmp.write_text(table))
    costs = load_eval("metrics/cost.json")
    write_json("metrics/summary.json", summary(reports, runs, costs))
    print(table)


if __name__ == "__main__":
    run_stage(main)
