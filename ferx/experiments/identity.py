"""What an experiment ran on: its params (spec.normalised) and the files its stages read.

An experiment stands for a run only if both match. The files are the dependencies dvc.yaml
declares that no stage writes (stage scripts, ferx modules, the data folder with the `.dvc`
file that tracks FER2013, the user's probes) plus dvc.yaml itself (the commands), each by its
git blob id: in an experiment's commit from `git ls-tree`, in the workspace from
`git hash-object`. Anything no stage reads (README, the ablation table, this tool) is left out,
so committing it makes nothing stale; params.yaml is compared as params, not as bytes, so a
comment changes nothing either.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ferx.errors import UserError
from ferx.experiments.spec import get_dotted

PIPELINE = "dvc.yaml"
_VAR = re.compile(r"\$\{\s*([A-Za-z0-9_.]+)\s*\}")


def _git(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, input=stdin)
    if result.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _paths(entries: list[Any]) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or []]


def _expand(text: str, params: dict[str, Any], item: dict[str, Any]) -> str:
    def value(match: re.Match) -> str:
        key = match.group(1)
        found = item.get(key.removeprefix("item.")) if key.startswith("item.") else None
        found = get_dotted(params, key) if found is None else found
        if found is None:
            raise UserError(f"{PIPELINE}: ${{{key}}}: no such param")
        return str(found)

    return _VAR.sub(value, text)


def _stage_instances(name: str, stage: dict[str, Any]) -> list[dict[str, Any]]:
    # what this reader understands of dvc.yaml; anything else is refused, never skipped
    unsupported = sorted({"foreach", "do", "wdir"} & set(stage))
    if unsupported:
        raise UserError(f"{PIPELINE}: stage {name}: {unsupported[0]}: not read by ferx-ablate")
    matrix = stage.get("matrix") or {}
    if not all(isinstance(values, list) for values in matrix.values()):
        raise UserError(f"{PIPELINE}: stage {name}: matrix values must be written out as lists")
    keys = list(matrix)
    return [dict(zip(keys, c, strict=True)) for c in itertools.product(*matrix.values())] or [{}]


# Stages that only present results (the report page reads every result and the ablation
# tables themselves): what they read cannot change a run's metrics, and counting it would make
# every experiment stale whenever a table is committed.
PRESENTATION_STAGES = ("report",)


def _computing_stages(pipeline: dict[str, Any]) -> dict[str, Any]:
    stages = pipeline.get("stages") or {}
    return {name: stage for name, stage in stages.items() if name not in PRESENTATION_STAGES}


def stage_inputs(pipeline: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The paths dvc.yaml's computing stages read and no stage writes, sorted."""
    deps, outs = set(), set()
    for name, stage in _computing_stages(pipeline).items():
        for item in _stage_instances(name, stage):
            deps |= {_expand(p, params, item) for p in _paths(stage.get("deps"))}
            for kind in ("outs", "metrics", "plots"):
                outs |= {_expand(p, params, item) for p in _paths(stage.get(kind))}

    def written(path: str) -> bool:
        return any(path == out or path.startswith(out.rstrip("/") + "/") for out in outs)

    return sorted(p.rstrip("/") for p in deps if not written(p))


def fingerprint(blobs: dict[str, str], pipeline: dict[str, Any], params: dict[str, Any]) -> str:
    """sha256 over the stages as dvc.yaml defines them (commands, deps, outs; not its comments
    or top-level plots) and (path, blob id) of every file under the stages' inputs, with each
    input's `.dvc` file (data that `dvc add` tracks: the pointer's bytes hold the data's hash)."""
    inputs = stage_inputs(pipeline, params)

    def read(path: str) -> bool:
        return any(path in (p, f"{p}.dvc") or path.startswith(f"{p}/") for p in inputs if p != ".")

    lines = [json.dumps(_computing_stages(pipeline), sort_keys=True)]
    lines += sorted(f"{path} {blob}" for path, blob in blobs.items() if read(path))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def commit_blobs(rev: str) -> dict[str, str]:
    """path -> blob id of every file in a commit (an experiment's, with what it ran on)."""
    out = _git("ls-tree", "-r", "-z", "--full-tree", rev)
    blobs = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        blobs[path] = meta.split()[2]
    return blobs


def workspace_blobs(root: Path = Path(".")) -> dict[str, str]:
    """path -> blob id of the files a queued experiment takes from the workspace: those git
    tracks, as they are now (DVC's queue stashes tracked changes, not untracked files)."""
    listed = _git("-C", str(root), "ls-files", "-z", "-c")
    paths = sorted({p for p in listed.split("\0") if p and (root / p).is_file()})
    if not paths:
        return {}
    ids = _git("-C", str(root), "hash-object", "--stdin-paths", stdin="\n".join(paths))
    return dict(zip(paths, ids.split(), strict=True))


def parse_pipeline(text: str | None) -> dict[str, Any]:
    if not text:
        raise UserError(f"{PIPELINE}: not found")
    return yaml.safe_load(text) or {}


def commit_fingerprint(rev: str, params: dict[str, Any]) -> str:
    """The fingerprint of what an experiment's stages read, from its commit."""
    pipeline = parse_pipeline(_git("show", f"{rev}:{PIPELINE}"))
    return fingerprint(commit_blobs(rev), pipeline, params)
