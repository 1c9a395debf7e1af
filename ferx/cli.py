"""What every stage script shares: load params once, turn user errors into one-line exits.

Imports only what every stage needs anyway (params): the prepare stage must not pay for torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from ferx.errors import UserError
from ferx.params import Params, load_params


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _use_threads(threads: int) -> None:
    # runtime.threads for every stage that computes with torch; a stage script imports torch
    # at its top if it uses it, and one that does not (prepare) must not pay for the import
    torch = sys.modules.get("torch")
    if threads and torch is not None:
        torch.set_num_threads(threads)


def run_stage(main: Callable[[Params], None]) -> None:
    """Validate params.yaml (every section, before any work), then run the stage."""
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        params = load_params(os.environ.get("FERX_PARAMS", "params.yaml"))
        _use_threads(params.runtime.threads)
        main(params)
    except (UserError, FileNotFoundError) as exc:  # a bug keeps its traceback
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; outputs written so far are complete, rerun to continue", 130)
