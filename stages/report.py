"""dvc stage `report`: the run as one offline page (`report/index.html`) and a model card
(`report/model_card.md`), both written from the run's own files (no torch)."""

from ferx import paths
from ferx.analysis.model_card import model_card
from ferx.analysis.report import build_report
from ferx.atomic import write_atomic
from ferx.cli import run_stage
from ferx.experiments.freshness import study_freshness
from ferx.params import Params


def main(params: Params) -> None:
    # the report has no knobs; the card states the training recipe it reads from params
    # whether each committed ablation table still describes today's code, data and params
    studies = sorted(p.parent.name for p in paths.ABLATIONS.glob(f"*/{paths.ABLATION_TABLE}"))
    freshness = {}
    for name in studies:
        found = study_freshness(name)
        freshness[name] = (found.state, found.note)
        print(f"report: {paths.ABLATIONS / name}: {found.note}")
    page, read = build_report(".", freshness)
    card = model_card(".", params.train)
    write_atomic(paths.REPORT_PAGE, lambda tmp: tmp.write_text(page))
    write_atomic(paths.MODEL_CARD, lambda tmp: tmp.write_text(card))
    print(f"report: {paths.REPORT_PAGE} ({len(page) / 1e6:.1f} MB, from {len(read)} files)")
    print(f"report: {paths.MODEL_CARD}")


if __name__ == "__main__":
    run_stage(main)
