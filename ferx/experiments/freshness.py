"""Whether a committed ablation table still describes today's pipeline.

A table is written from its runs' records (ablation/<name>/runs.json). It is current when
every run it shows has a record with today's run key (identity.fingerprint: the params and
files its figures depend on), and stale when some were made on other code, data or params:
its figures then describe that pipeline, not this one. The report labels each table with
this; `ferx-ablate <spec> --collect-only` says which runs are missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ferx import paths
from ferx.errors import UserError
from ferx.experiments import identity, records
from ferx.experiments.spec import load_spec, make_runs, read_params_file
from ferx.params import DEFAULT_PARAMS_PATH, ParamsError

# what a damaged spec, table, record file or git answer raises: "unknown", never a traceback
UNREADABLE = (UserError, ParamsError, OSError, ValueError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class Freshness:
    state: str  # "current", "stale" or "unknown"
    note: str  # one line for people


def _seeds(table: Path) -> tuple[int, ...]:
    rows = json.loads(table.read_text())
    return tuple(sorted({int(seed) for row in rows for seed in row.get("seeds") or []}))


def study_freshness(
    name: str,
    root: Path = Path("."),
    specs: Path = Path("ablations"),
    params_path: Path = DEFAULT_PARAMS_PATH,
) -> Freshness:
    """How the table of study `name` (ablation/<name>/) stands against today's workspace."""
    spec_path = specs / f"{name}.yaml"
    if not (root / paths.ABLATIONS / name / records.FILE).exists():
        return Freshness("unknown", f"freshness unknown: no records ({records.FILE}) beside it")
    try:
        spec = load_spec(root / spec_path, root / params_path)
        runs = make_runs(
            spec,
            read_params_file(root / params_path),
            _seeds(root / paths.ABLATIONS / name / paths.ABLATION_ROWS),
        )
        kept = records.load(root / paths.ABLATIONS / name / records.FILE)
        pipeline = identity.parse_pipeline((root / identity.PIPELINE).read_text())
        blobs = identity.workspace_blobs(root)
        keys = [identity.workspace_fingerprint(blobs, pipeline, r.resolved, root) for r in runs]
    except (
        UserError,
        ParamsError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Freshness("unknown", f"freshness unknown: {first}")
    standing = sum(records.find(kept, key) is not None for key in keys)
    if runs and standing == len(runs):
        return Freshness(
            "current",
            f"current: each of its {len(runs)} runs was made on today's code, data and params",
        )
    return Freshness(
        "stale",
        f"stale: {len(runs) - standing} of its {len(runs)} runs were made on other code, data or "
        f"params than today's, so its figures describe that pipeline "
        f"(`ferx-ablate {spec_path.as_posix()}` reruns them)",
    )
