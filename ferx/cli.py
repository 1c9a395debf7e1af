"""What every stage script shares: load params once, turn known errors into one-line exits."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from ferx.checkpoint import CheckpointError
from ferx.explain import ProbeError
from ferx.fercsv import FerDataError
from ferx.params import Params, ParamsError, load_params

# Errors a user can cause and fix; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,
    FerDataError,
    ParamsError,
    ProbeError,
    FileNotFoundError,
)


class StageError(ValueError):
    """A stage's input is unusable; the message says which file and what is wrong."""


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_stage(main: Callable[[Params], None]) -> None:
    """Validate params.yaml (every section, before any work), then run the stage."""
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        params = load_params(os.environ.get("FERX_PARAMS", "params.yaml"))
        main(params)
    except (*USER_ERRORS, StageError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; outputs written so far are complete, rerun to continue", 130)
