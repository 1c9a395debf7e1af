"""What a run is: the params and files its table figures depend on, and nothing else.

ferx-ablate's table reads two files of each experiment: metrics/summary.json and
metrics/eval/baseline_public_test.json (which PublicTest faces were right). A run's identity
is the upstream closure of the stages that write them, read from dvc.yaml: those stages'
definitions (commands, deps, outs; not dvc.yaml's comments or plots), the params they declare
(their values, so a comment in params.yaml changes nothing), and every file they read that no
stage writes (stage scripts, ferx modules, the data folder with the `.dvc` pointer that tracks
FER2013), each by its git blob id: in an experiment's commit from `git ls-tree`, in the
workspace from `git hash-object`. What only presents or explains (explain, plots_page, report;
the probe faces, the user's probes, prepare.probes, explain.*) is outside it, and so are notes
in a data folder (data/raw/README.md): changing them leaves every finished run standing.

Every input must be in the fingerprint: one outside the repository, or tracked by neither git
nor DVC, is refused with one line (its bytes would decide the numbers while the fingerprint
held nothing of them), as is a data file in an input folder that git and DVC do not track.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import posixpath
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferx import paths
from ferx.data.notes import is_note, is_pointer
from ferx.errors import UserError
from ferx.experiments.spec import get_dotted

PIPELINE = "dvc.yaml"
SUMMARY = paths.SUMMARY.as_posix()
PUBLIC_EVAL = paths.evaluation("baseline", "public_test").as_posix()  # which faces were right
# what a table reads of a run: the summary, and each model's evaluations (per-face results on
# PublicTest, per-class recall on both splits: ferx.experiments.records); the first two are
# required of every run
TABLE_READS = (
    SUMMARY,
    PUBLIC_EVAL,
    paths.evaluation("baseline", "private_test").as_posix(),
    paths.evaluation("improved", "public_test").as_posix(),
    paths.evaluation("improved", "private_test").as_posix(),
)
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


def _matrix_items(name: str, stage: dict[str, Any]) -> list[dict[str, Any]]:
    # what this reader understands of dvc.yaml; anything else is refused, never skipped
    unsupported = sorted({"foreach", "do", "wdir"} & set(stage))
    if unsupported:
        raise UserError(f"{PIPELINE}: stage {name}: {unsupported[0]}: not read by ferx-ablate")
    matrix = stage.get("matrix") or {}
    if not all(isinstance(values, list) for values in matrix.values()):
        raise UserError(f"{PIPELINE}: stage {name}: matrix values must be written out as lists")
    keys = list(matrix)
    return [dict(zip(keys, c, strict=True)) for c in itertools.product(*matrix.values())] or [{}]


def _cell_name(name: str, stage: dict[str, Any], item: dict[str, Any]) -> str:
    """The name DVC gives a matrix cell (dvc/parsing: MatrixDefinition): the stage, "@", and
    per key its value (booleans as true / false), or for a list or mapping the key and its
    index, joined by "-"; a stage without a matrix keeps its name."""
    if not item:
        return name
    fragments = []
    for key, value in item.items():
        if isinstance(value, (dict, list)):
            fragments.append(f"{key}{stage['matrix'][key].index(value)}")
        elif isinstance(value, bool):
            fragments.append("true" if value else "false")
        else:
            fragments.append(str(value))
    return f"{name}@{'-'.join(fragments)}"


@dataclass(frozen=True)
class _Instance:
    """One stage, or one cell of a matrix stage, with its paths expanded (as git names them;
    ".." for a path outside the repository, refused only if a run's stages read it)."""

    stage: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    raw_deps: tuple[str, ...]  # as dvc.yaml spells them, for the error message
    name: str = ""  # as DVC names it: the stage, or stage@values-of-its-matrix-cell


def _plain(path: str, root: Path) -> str:
    """`path` as git names it (relative, no `./`); ".." when it is spelt outside the
    repository (links are followed only for inputs: `_links_outside`)."""
    plain = posixpath.normpath(path)
    if posixpath.isabs(plain):
        try:
            plain = Path(plain).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return ".."
    if plain == ".." or plain.startswith("../"):
        return ".."
    return plain


def _links_outside(path: str, root: Path) -> bool:
    """Whether `path`, inside the repository by name, is a link (or under one) to a place
    outside it: git would hold the link, not what the stage reads."""
    top = root.resolve()
    try:
        (top / path).resolve().relative_to(top)
    except ValueError:
        return True
    return False


def _in_repository(path: str, stage: str, root: Path, shown: str | None = None) -> str:
    """`path` as git names it, or a one-line error if it is outside the repository."""
    plain = _plain(path, root)
    if plain == "..":
        raise UserError(
            f"stage {stage} reads {shown or path}, outside the repository: a run's identity "
            "could not "
            "hold its bytes. Keep it under the repository (FER2013: in data/raw/, tracked with "
            "`dvc add`; README: The data)"
        )
    return plain


def _instances(pipeline: dict[str, Any], params: dict[str, Any], root: Path) -> list[_Instance]:
    found = []
    for name, stage in (pipeline.get("stages") or {}).items():
        for item in _matrix_items(name, stage):
            spelled = tuple(_expand(p, params, item) for p in _paths(stage.get("deps")))
            deps = tuple(_plain(p, root) for p in spelled)
            outs = tuple(
                _plain(_expand(p, params, item), root)
                for kind in ("outs", "metrics", "plots")
                for p in _paths(stage.get(kind))
            )
            found.append(_Instance(name, deps, outs, spelled, _cell_name(name, stage, item)))
    return found


def _within(path: str, folders: tuple[str, ...] | list[str]) -> bool:
    """`path` is one of `folders` or lies under one."""
    return any(path == f or path.startswith(f"{f}/") for f in folders)


def _overlap(a: str, b: str) -> bool:
    """One path is the other or holds it (a folder output and a file read from it)."""
    return a == b or a.startswith(f"{b}/") or b.startswith(f"{a}/")


@dataclass(frozen=True)
class Closure:
    """What a run's table figures depend on (see the module's docstring)."""

    stages: dict[str, Any]  # name -> the stage as dvc.yaml defines it
    params: dict[str, Any]  # dotted key -> value, of every param those stages declare
    inputs: dict[str, str]  # path -> the stage that reads it; no stage writes it
    written: tuple[str, ...] = ()  # every stage's outputs (never counted as inputs)


def closure(pipeline: dict[str, Any], params: dict[str, Any], root: Path = Path(".")) -> Closure:
    """The stages upstream of the files the table reads, their params and their inputs."""
    instances = _instances(pipeline, params, root)
    needed: list[_Instance] = []
    wanted, seen = list(TABLE_READS), set()
    while wanted:
        path = wanted.pop()
        if path in seen:
            continue
        seen.add(path)
        writers = [i for i in instances if any(_overlap(out, path) for out in i.outs)]
        if not writers and path in TABLE_READS[:2]:  # the other models' are optional
            raise UserError(f"{PIPELINE}: no stage writes {path}, which ferx-ablate's table reads")
        for writer in writers:
            if writer not in needed:
                needed.append(writer)
                wanted.extend(d for d in writer.deps if d != "..")
    every_out = [out for i in instances for out in i.outs if out != ".."]
    inputs = {}
    for i in needed:
        for dep, raw in zip(i.deps, i.raw_deps, strict=True):
            if dep == "..":
                _in_repository(raw, i.stage, root)  # raises: one line naming stage and path
            # written by a stage (the path or a folder above it): an output, not an input; a
            # folder that only holds outputs stays an input (fingerprint skips those files)
            if not _within(dep, every_out):
                inputs[dep] = i.stage
    stages = {name: pipeline["stages"][name] for name in sorted({i.stage for i in needed})}
    written = tuple(sorted(set(every_out)))
    return Closure(stages, _declared_params(stages, params), dict(sorted(inputs.items())), written)


def _declared_params(stages: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    keys = set()
    for name, stage in stages.items():
        for entry in stage.get("params") or []:
            if not isinstance(entry, str):
                raise UserError(
                    f"{PIPELINE}: stage {name}: params from another file ({entry}): "
                    "not read by ferx-ablate"
                )
            keys.add(entry)
    return {key: get_dotted(params, key) for key in sorted(keys)}


def table_targets(pipeline: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The stages (matrix cells by DVC's names) that write what the table reads: a run
    reproduces these and what is upstream of them, never what only presents (explain,
    plots_page, report) or another model the table does not read."""
    instances = _instances(pipeline, params, Path("."))
    writers = {
        i.name for i in instances for path in TABLE_READS if any(_overlap(o, path) for o in i.outs)
    }
    return sorted(writers)


def stage_inputs(pipeline: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The paths the run's stages read and no stage writes, sorted."""
    return list(closure(pipeline, params).inputs)


def _pointers_above(path: str) -> list[str]:
    """The `.dvc` pointers that would track `path` or a folder above it (`dvc add`)."""
    parts = path.split("/")
    return ["/".join(parts[:n]) + ".dvc" for n in range(len(parts), 0, -1)]


def _counted(path: str, input_path: str, written: tuple[str, ...] = ()) -> bool:
    """Whether the file `path`, found at, above or under the input `input_path`, counts."""
    if path == input_path or path in _pointers_above(input_path):
        return True
    if _within(path, written):
        return False  # a stage's output inside an input folder
    return path.startswith(f"{input_path}/") and not is_note(posixpath.basename(path))


def fingerprint(
    blobs: dict[str, str],
    pipeline: dict[str, Any],
    params: dict[str, Any],
    root: Path = Path("."),
) -> str:
    """sha256 over the closure's stage definitions, its params and (path, blob id) of every
    file of its inputs: the file, its `.dvc` pointer (the pointer's bytes hold the data's
    hash), or the files under a folder but its notes. An input with no tracked file at all is
    refused: its bytes would change the numbers and not the fingerprint."""
    return _hash(closure(pipeline, params, root), blobs, root)


def _hash(run: Closure, blobs: dict[str, str], root: Path) -> str:
    """fingerprint() of a closure already computed."""
    lines = [json.dumps(run.stages, sort_keys=True), json.dumps(run.params, sort_keys=True)]
    for path, stage in run.inputs.items():
        above = _pointers_above(path)
        held = [p for p in blobs if p == path or p in above or p.startswith(f"{path}/")]
        # data DVC tracks may be linked in from its cache (cache.type: symlink); the pointer
        # holds its hash. Anything else reached through a link is outside what git holds.
        if not any(p in above for p in held) and _links_outside(path, root):
            _in_repository("..", stage, root, shown=path)
        holds_outputs = any(out.startswith(f"{path}/") for out in run.written)
        if not held and not holds_outputs:  # a folder of outputs alone holds nothing of ours
            raise UserError(
                f"stage {stage} reads {path}, which neither git nor DVC tracks: a run's identity "
                f"could not hold it (`git add {path}`, or for data `dvc add {path}` and commit "
                "the .dvc file; README: The data)"
            )
        lines += sorted(f"{p} {blobs[p]}" for p in held if _counted(p, path, run.written))
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
    names = sorted({p for p in listed.split("\0") if p and (root / p).is_file()})
    if not names:
        return {}
    ids = _git("-C", str(root), "hash-object", "--stdin-paths", stdin="\n".join(names))
    return dict(zip(names, ids.split(), strict=True))


def untracked_data(
    blobs: dict[str, str],
    folders: list[str],
    root: Path = Path("."),
    written: tuple[str, ...] = (),
) -> list[str]:
    """Files in the workspace's input folders that a stage would read but that neither git
    nor DVC tracks (no blob, no `.dvc` pointer beside them or above them): a workspace run
    would use them, a queued one would not see them, and no fingerprint holds them."""
    present = [f for f in folders if (root / f).is_dir()]
    if not present:
        return []
    listed = _git("-C", str(root), "ls-files", "-z", "-o", "--", *present)

    def tracked(path: str) -> bool:
        return path in blobs or any(p in blobs for p in _pointers_above(path))

    return sorted(
        p
        for p in filter(None, listed.split("\0"))
        if not is_note(posixpath.basename(p))
        and not is_pointer(p)
        and not tracked(p)
        and not _within(p, written)  # a stage's output
    )


def workspace_fingerprint(
    blobs: dict[str, str],
    pipeline: dict[str, Any],
    params: dict[str, Any],
    root: Path = Path("."),
) -> str:
    """fingerprint() of the workspace, which also refuses untracked data in an input folder."""
    run = closure(pipeline, params, root)
    if stray := untracked_data(blobs, list(run.inputs), root, run.written):
        raise UserError(
            f"{stray[0]}: a stage of the run reads it, but neither git nor DVC tracks it: a "
            "queued experiment would not see it and no run's identity could hold it "
            f"(`dvc add {stray[0]}` and commit the .dvc file; README: The data)"
        )
    return _hash(run, blobs, root)


def parse_pipeline(text: str | None) -> dict[str, Any]:
    if not text:
        raise UserError(f"{PIPELINE}: not found")
    return yaml.safe_load(text) or {}


def commit_fingerprint(rev: str, params: dict[str, Any]) -> str:
    """The fingerprint of what an experiment's stages read, from its commit."""
    pipeline = parse_pipeline(_git("show", f"{rev}:{PIPELINE}"))
    return fingerprint(commit_blobs(rev), pipeline, params)
