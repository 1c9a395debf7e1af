"""dvc stage `compare`: baseline vs improved on PublicTest and PrivateTest."""

from ferx.atomic import write_atomic, write_json
from ferx.cli import run_stage
from ferx.compare import compare, load_reports, markdown_table, plot_recall, recall_records
from ferx.params import Params


def main(params: Params) -> None:
    del params  # validated like every stage's; compare itself has no knobs
    result = compare(load_reports("metrics/eval"))
    write_json("metrics/compare.json", result)
    write_json("plots/compare/recall.json", recall_records(result))
    plot_recall(result, "plots/compare/recall.png")
    table = markdown_table(result)
    write_atomic("plots/compare/table.md", lambda tmp: tmp.write_text(table))
    print(table)


if __name__ == "__main__":
    run_stage(main)
