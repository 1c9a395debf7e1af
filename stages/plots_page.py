"""dvc stage `plots_page`: the offline page template `dvc plots show` / `diff` use
(.dvc/config: plots.html_template), with Vega, Vega-Lite and vega-embed inline."""

from ferx.analysis.plots_page import write_offline_template
from ferx.cli import run_stage
from ferx.params import Params

TEMPLATE = "plots/page/template.html"


def main(params: Params) -> None:
    del params  # validated like every stage's; the page has no knobs
    write_offline_template(TEMPLATE)
    print(f"plots_page: {TEMPLATE} (Vega inline: `dvc plots show` needs no network)")


if __name__ == "__main__":
    run_stage(main)
