"""dvc stage `prepare`: FER2013 CSV (or the synthetic stand-in) -> npz splits."""

import time
from pathlib import Path

from ferx import paths
from ferx.atomic import write_json
from ferx.cli import run_stage
from ferx.data.prepare import load_source, summarise, write_splits
from ferx.data.splits import SOURCE_FILE
from ferx.params import Params


def main(params: Params) -> None:
    start = time.perf_counter()
    table, source = load_source(params.prepare)
    write_splits(table, params.prepare.out_dir)
    # what the later stages read (they depend on it, not on metrics/prepare.json, which also
    # names the raw file: renaming it must not retrain anything)
    write_json(Path(params.prepare.out_dir) / SOURCE_FILE, {"source": source.kind})
    summary = summarise(table, source)
    write_json(paths.PREPARE_SUMMARY, summary)
    counts = ", ".join(f"{k} {v['total']}" for k, v in summary["counts"].items())
    print(f"prepare: {source.kind} data, {counts} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
