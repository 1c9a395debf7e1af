"""dvc stage `plots_page`: the offline page template `dvc plots show` / `diff` use
(.dvc/config: plots.html_template), with Vega, Vega-Lite and vega-embed inline."""

from ferx import paths
from ferx.analysis.plots_page import write_offline_template
from ferx.cli import run_stage
from ferx.params import Params


def main(params: Params) -> None:
    del params  # validated like every stage's; the page has no knobs
    write_offline_template(paths.PLOTS_TEMPLATE)
    print(f"plots_page: {paths.PLOTS_TEMPLATE} (Vega inline: `dvc plots show` needs no network)")


if __name__ == "__main__":
    run_stage(main)
