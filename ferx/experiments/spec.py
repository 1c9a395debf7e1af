"""The ablation spec: factors, a design that turns them into rows, seeds; each run's params.

    name: recipe                  # ablation/<name>/ and the experiments' name prefix
    base: {train.epochs: 20}      # params set in every row (optional)
    factors:                      # in order; each sets its params when it is on (Y)
      ema: {train.ema: 0.999}
      sgd: {train.optimizer: sgd, train.lr: 0.01}
    design: cumulative            # cumulative | one_at_a_time | full
    seeds: [0, 1, 2]              # every row once per train.seed (optional; --seeds overrides)
    model: baseline               # whose figures the table reports: baseline | improved

A run is one row at one seed: one DVC experiment, `<name>-<row>-s<seed>`.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferx.errors import UserError
from ferx.params import DEFAULT_PARAMS_PATH, ParamsError, validate_params

DESIGNS = ("cumulative", "one_at_a_time", "full")
MODELS = ("baseline", "improved")  # the models a run makes; a table reports one of them
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
SEED_KEY = "train.seed"
# How a run is computed, not what (ferx.params.RuntimeParams): never part of a run's identity,
# so `--jobs` may set runtime.threads without making finished experiments stale.
NOT_IDENTITY = ("runtime",)


class SpecError(UserError):
    """An ablation spec file is unreadable or asks for something the params schema refuses."""


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    factors: dict[str, dict[str, Any]]  # factor -> the params it sets, dotted keys
    base: dict[str, Any] = field(default_factory=dict)
    design: str = "cumulative"
    seeds: tuple[int, ...] = ()  # empty: one run per row at params.yaml's train.seed
    model: str = "baseline"  # whose figures the table reports (MODELS)


@dataclass(frozen=True)
class Row:
    index: int
    on: dict[str, bool]  # factor -> switched on in this row
    params: dict[str, Any]  # dotted key -> value: base, then each factor that is on, in order
    label: str  # what the row switches on, for tables and figures


@dataclass(frozen=True)
class Run:
    """One row at one seed, with its complete resolved params (the identity an experiment
    must match to stand for it)."""

    row: Row
    seed: int
    name: str  # the DVC experiment name it is queued under
    sets: dict[str, Any]  # what `dvc exp run -S` is given: the row's params and the seed
    resolved: dict[str, Any]  # params.yaml + sets, normalised by the schema, runtime left out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise KeyError(key)
    node[leaf] = value


def get_dotted(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def normalised(raw: dict[str, Any]) -> dict[str, Any]:
    """Params as the schema reads them (`1e-3` and 0.001 alike, defaults filled in), without
    the sections that say how to compute. Raises ParamsError if the schema refuses them."""
    params = validate_params(raw, "params").model_dump(mode="json")
    return {k: v for k, v in params.items() if k not in NOT_IDENTITY}


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{path}: {where}: expected a mapping, got {type(value).__name__}")
    return value


def check_seeds(seeds: Any, where: str) -> tuple[int, ...]:
    ok = isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds)
    if not ok:
        raise SpecError(f"{where}: expected a list of whole numbers >= 0 (got {seeds!r})")
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"{where}: names a seed twice ({seeds})")
    return tuple(seeds)


def load_spec(path: str | Path, params_path: str | Path = DEFAULT_PARAMS_PATH) -> Spec:
    """Read and check a spec; every row it makes is validated against the params schema
    (on top of params.yaml), so nothing is queued for a spec with one bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    raw = _mapping(raw, "the file", path)
    unknown = sorted(set(raw) - {"name", "base", "factors", "design", "seeds", "model"})
    if unknown:
        raise SpecError(
            f"{path}: {unknown[0]}: unknown key (name, base, factors, design, seeds, model)"
        )
    model = raw.get("model", "baseline")
    if model not in MODELS:
        raise SpecError(f"{path}: model: must be one of {', '.join(MODELS)} (got {model!r})")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"{path}: name: expected letters, digits, - or _ (got {name!r})")
    design = raw.get("design", "cumulative")
    if design not in DESIGNS:
        raise SpecError(f"{path}: design: must be one of {', '.join(DESIGNS)} (got {design!r})")
    base = _mapping(raw.get("base") or {}, "base", path)
    factors = _mapping(raw.get("factors"), "factors", path) if "factors" in raw else {}
    if not factors:
        raise SpecError(f"{path}: factors: at least one factor is needed")
    for factor, settings in factors.items():
        if not isinstance(factor, str) or not NAME.match(factor):
            raise SpecError(f"{path}: factors: {factor!r} is not a usable factor name")
        if not _mapping(settings, f"factors.{factor}", path):
            raise SpecError(f"{path}: factors.{factor}: sets no param")
    seeds = check_seeds(raw["seeds"], f"{path}: seeds") if "seeds" in raw else ()
    if seeds:  # the seed is the spec's to vary: a row that also sets it would be two seeds
        for where, settings in [("base", base)] + [(f"factors.{f}", s) for f, s in factors.items()]:
            if SEED_KEY in settings:
                raise SpecError(f"{path}: {where}: {SEED_KEY}: set by `seeds`, not by a row")
    spec = Spec(path, name, dict(factors), dict(base), design, seeds, model)
    _check_against_schema(spec, Path(params_path))
    return spec


def read_params_file(params_path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(params_path.read_text()) or {}
    except FileNotFoundError:
        raise SpecError(f"{params_path}: not found (run ferx-ablate in the project root)") from None


def _check_against_schema(spec: Spec, params_path: Path) -> None:
    current = read_params_file(params_path)
    _check_part(spec, "base", spec.base, current)  # each part first: the error names where
    on_base = copy.deepcopy(current)  # every run has the base, so a factor is read on top of it
    for key, value in spec.base.items():
        set_dotted(on_base, str(key), value)
    for factor, settings in spec.factors.items():
        where = f"factors.{factor}" + (" (on top of the base)" if spec.base else "")
        _check_part(spec, where, settings, on_base)
    try:  # then whole runs: factors may clash with each other
        make_runs(spec, current)
    except ParamsError as exc:
        raise SpecError(f"{spec.path}: {exc}") from None


def _check_part(spec: Spec, where: str, settings: dict[str, Any], under: dict[str, Any]) -> None:
    """A part's keys together on top of `under` (one key may need another) are valid params."""
    merged = copy.deepcopy(under)
    for key, value in settings.items():
        try:
            set_dotted(merged, str(key), value)
        except KeyError:
            raise SpecError(f"{spec.path}: {where}: {key}: not a params key") from None
    try:
        validate_params(merged, "params")
    except ParamsError as exc:
        reason = str(exc).removeprefix("params: ")
        raise SpecError(f"{spec.path}: {where}: {reason}") from None


def _label(names: list[str], switch: list[bool], design: str, index: int) -> str:
    if not any(switch):
        return "reference"
    if design == "cumulative":  # each row adds one factor to the row before
        return "+" + names[index - 1]
    return " + ".join(n for n, on in zip(names, switch, strict=True) if on)


def make_rows(spec: Spec) -> list[Row]:
    """cumulative: row k switches on factors 1..k (row 0: none); one_at_a_time: none, then
    each factor alone; full: every combination (2^n rows), in binary order of the factors."""
    names = list(spec.factors)
    if spec.design == "cumulative":
        switches = [[i < k for i in range(len(names))] for k in range(len(names) + 1)]
    elif spec.design == "one_at_a_time":
        switches = [[False] * len(names)] + [
            [i == k for i in range(len(names))] for k in range(len(names))
        ]
    else:
        switches = [list(c) for c in itertools.product([False, True], repeat=len(names))]
    rows = []
    for index, switch in enumerate(switches):
        params = dict(spec.base)
        for name, on in zip(names, switch, strict=True):
            if on:
                params.update(spec.factors[name])
        on = dict(zip(names, switch, strict=True))
        rows.append(Row(index, on, params, _label(names, switch, spec.design, index)))
    return rows


def make_runs(spec: Spec, current: dict[str, Any], seeds: tuple[int, ...] = ()) -> list[Run]:
    """Every row at every seed (`seeds`, else the spec's, else the row's own train.seed),
    each with its resolved params. Raises ParamsError naming the run the schema refuses."""
    runs = []
    for row in make_rows(spec):
        merged = copy.deepcopy(current)
        for key, value in row.params.items():
            set_dotted(merged, key, value)
        for seed in seeds or spec.seeds or (get_dotted(merged, SEED_KEY) or 0,):
            name = f"{spec.name}-{row.index}-s{seed}"
            with_seed = copy.deepcopy(merged)
            set_dotted(with_seed, SEED_KEY, seed)
            try:
                resolved = normalised(with_seed)
            except ParamsError as exc:
                raise ParamsError(f"row {row.index} ({name}): {exc}") from None
            runs.append(Run(row, int(seed), name, {**row.params, SEED_KEY: seed}, resolved))
    return runs
