"""Console scripts that need the pipeline's packages: a one-line error naming the extra, not
a traceback, where only prediction was installed (`pip install ferx` without extras)."""

from __future__ import annotations

import sys

from ferx.extras import MissingExtra, require


def _pipeline_main(module: str, tool: str, needs: tuple[str, ...]):
    try:
        for needed in needs:
            require(needed, tool, "pipeline")
    except MissingExtra as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    from importlib import import_module

    return import_module(module).main


def ablate() -> int:
    needs = ("yaml", "dvc", "pydantic", "torch")
    main = _pipeline_main("ferx.experiments.cli", "ferx-ablate", needs)
    return 2 if main is None else main()


def release() -> int:
    main = _pipeline_main("ferx.deploy.release", "ferx-release", ("yaml", "pydantic"))
    return 2 if main is None else main()
