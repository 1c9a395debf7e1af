"""`ferx-ablate`: an ablation table and an accuracy-vs-GFLOPs figure from DVC experiments.

    ferx-ablate ablations/recipe.yaml [--jobs N] [--collect-only]

A spec names factors (each a set of params switched on together) and a design that turns them
into rows. Every row is one DVC experiment, `<name>-<row>`, queued with `dvc exp run --queue`
and run by `dvc queue start`; the results are read back from `dvc exp show --json`, so DVC
holds them (no results store of our own) and `dvc exp show` lists the same experiments.

    name: recipe                  # ablation/<name>/ and the experiments' name prefix
    base: {train.epochs: 20}      # params set in every row (optional)
    factors:                      # in order; each sets its params when it is on (Y)
      ema: {train.ema: 0.999}
      sgd: {train.optimizer: sgd, train.lr: 0.01}
    design: cumulative            # cumulative | one_at_a_time | full

Outputs in ablation/<name>/: table.md, table.json, frontier.png.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferx.atomic import write_atomic, write_json
from ferx.errors import UserError
from ferx.params import DEFAULT_PARAMS_PATH, TTA_VIEWS, ParamsError, validate_params

DESIGNS = ("cumulative", "one_at_a_time", "full")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# The model whose numbers a row reports: the one the train stage makes (architecture and
# recipe are what an ablation varies; improve starts from it).
MODEL = "baseline"
# Published FER2013 results, for orientation only: how each was selected matters as much as
# the number. Only the first has a cost we can measure (it is our default network).
REFERENCES = (
    {
        "label": "mini-Xception paper, 66% (selected on its test data)",
        "accuracy": 0.66,
        "gflops": 0.00585,
    },
    {"label": "Tang 2013, 71.2% (challenge winner; cost not measured)", "accuracy": 0.712},
    {
        "label": "VGG, Khaireddin & Chen 2021, 73.3% (ten-crop, tuned on PrivateTest)",
        "accuracy": 0.733,
    },
)


class SpecError(UserError):
    """An ablation spec file is unreadable or asks for something the params schema refuses."""


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    factors: dict[str, dict[str, Any]]  # factor -> the params it sets, dotted keys
    base: dict[str, Any] = field(default_factory=dict)
    design: str = "cumulative"


@dataclass(frozen=True)
class Row:
    experiment: str
    on: dict[str, bool]  # factor -> switched on in this row
    params: dict[str, Any]  # dotted key -> value: base, then each factor that is on, in order


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise KeyError(key)
    node[leaf] = value


def _get_dotted(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{path}: {where}: expected a mapping, got {type(value).__name__}")
    return value


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
    unknown = sorted(set(raw) - {"name", "base", "factors", "design"})
    if unknown:
        raise SpecError(f"{path}: {unknown[0]}: unknown key (name, base, factors, design)")
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
    spec = Spec(path, name, dict(factors), dict(base), design)
    _check_against_schema(spec, Path(params_path))
    return spec


def _check_against_schema(spec: Spec, params_path: Path) -> None:
    try:
        current = yaml.safe_load(params_path.read_text()) or {}
    except FileNotFoundError:
        raise SpecError(f"{params_path}: not found (run ferx-ablate in the project root)") from None
    parts = [("base", spec.base)] + [(f"factors.{f}", s) for f, s in spec.factors.items()]
    for where, settings in parts:  # each part alone first: the error names where the key is
        for key, value in settings.items():
            merged = copy.deepcopy(current)
            try:
                _set_dotted(merged, str(key), value)
                validate_params(merged, "params")
            except KeyError:
                raise SpecError(f"{spec.path}: {where}: {key}: not a params key") from None
            except ParamsError as exc:
                reason = str(exc).removeprefix("params: ")
                raise SpecError(f"{spec.path}: {where}: {reason}") from None
    for row in make_rows(spec):  # then whole rows: factors may clash with each other
        merged = copy.deepcopy(current)
        for key, value in row.params.items():
            _set_dotted(merged, key, value)
        try:
            validate_params(merged, "params")
        except ParamsError as exc:
            raise SpecError(f"{spec.path}: row {row.experiment}: {exc}") from None


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
        rows.append(Row(f"{spec.name}-{index}", on, params))
    return rows


# --- DVC ------------------------------------------------------------------------------


def _dvc_env() -> dict[str, str]:
    # stage commands say `python`: this interpreter's folder goes first on PATH
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=_dvc_env()
    )
    if check and result.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
    return result


def _set_value(value: Any) -> str:
    """A value as `dvc exp run -S key=value` parses it (YAML)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def experiments() -> dict[str, dict[str, Any]]:
    """name -> {"params": params.yaml, "metrics": metrics/summary.json} for the experiments of
    the current commit, from `dvc exp show --json`."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if node.get("name") and isinstance(data, dict) and node.get("rev") != "workspace":
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = (data.get("metrics") or {}).get("metrics/summary.json", {}).get("data")
                found.setdefault(node["name"], {"params": params, "metrics": metrics})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(_dvc("exp", "show", "--json").stdout or "[]"))
    return found


def queue_states() -> dict[str, str]:
    """experiment name -> Queued | Running | Success | Failed, from `dvc queue status`."""
    lines = _dvc("queue", "status").stdout.splitlines()[1:]  # after the header
    table = lines[: lines.index("")] if "" in lines else lines  # then "Worker status: ..."
    rows = [line.split() for line in table]
    return {row[1]: row[-1] for row in rows if len(row) >= 4}


def _same_params(row: Row, existing: dict[str, Any]) -> bool:
    return all(_get_dotted(existing["params"], k) == v for k, v in row.params.items())


def queue_rows(rows: list[Row], done: dict[str, dict[str, Any]], say=print) -> list[Row]:
    """Queue the rows that have no finished experiment with the same params; return them."""
    queued = []
    for row in rows:
        old = done.get(row.experiment)
        if old is not None and old["metrics"] is not None and _same_params(row, old):
            continue
        if old is not None:  # another spec's row of the same name, or a failed one: replace
            say(f"ablate: {row.experiment} exists with other params or no results; replacing it")
            _dvc("exp", "remove", row.experiment, check=False)
        sets = [arg for k, v in row.params.items() for arg in ("-S", f"{k}={_set_value(v)}")]
        _dvc("exp", "run", "--queue", "-n", row.experiment, *sets)
        queued.append(row)
    return queued


def wait_for(
    rows: list[Row], jobs: int, poll: float = 2.0, lost_after: float = 120.0
) -> dict[str, str]:
    """Start the queue workers and wait for the rows, with a progress line; final states.

    Done when every row is Success or Failed. A row can be missing from `dvc queue status` for
    a moment while a worker takes it from the queue, so a missing row is waited for; one
    missing for `lost_after` seconds while nothing is queued or running is reported lost."""
    names = {row.experiment for row in rows}
    # Not captured: the workers `queue start` launches inherit its output, and a captured
    # pipe would stay open (and this call blocked) until the last experiment ends.
    started = subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_dvc_env(),
    )
    if started.returncode != 0:
        raise UserError(f"dvc queue start -j {jobs} failed (exit {started.returncode})")
    start = time.monotonic()
    idle_since = None  # when rows were last seen missing with nothing queued or running
    while True:
        states = {n: s for n, s in queue_states().items() if n in names}
        finished = sum(s in ("Success", "Failed") for s in states.values())
        now = time.monotonic()
        elapsed = now - start
        left = elapsed / finished * (len(rows) - finished) if finished else None
        eta = f", about {left / 60:.0f} min left" if left is not None else ""
        print(
            f"\rablate: {finished}/{len(rows)} experiments done, {elapsed / 60:.1f} min{eta}  ",
            end="",
            flush=True,
        )
        if finished == len(rows):
            print()
            return states
        if {"Queued", "Running"} & set(states.values()):
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= lost_after:
            print()
            return {**{n: "Lost" for n in names}, **states}
        time.sleep(poll)


def failure_reason(name: str) -> str:
    """The last error line of a failed experiment's log."""
    log = _dvc("queue", "logs", name, check=False)
    lines = [line.strip() for line in (log.stdout + log.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["failed (no log)"])[-1][:300]


# --- the table and the figure ---------------------------------------------------------


def table_rows(
    spec: Spec, rows: list[Row], found: dict[str, dict[str, Any]], failed: dict[str, str]
) -> list[dict[str, Any]]:
    """One record per row: factor switches, then the numbers `dvc exp show` holds for it."""
    records = []
    for row in rows:
        record: dict[str, Any] = {"experiment": row.experiment, **row.on}
        metrics = (found.get(row.experiment) or {}).get("metrics")
        if row.experiment in failed or metrics is None:
            record |= {"status": "failed", "error": failed.get(row.experiment, "no results")}
            records.append(record)
            continue
        model = metrics[MODEL]
        params = found[row.experiment]["params"]
        tta = _get_dotted(params, "evaluate.tta") or "none"
        views = TTA_VIEWS.get(tta, 1)
        record |= {
            "status": "done",
            "source": metrics.get("source"),
            "public_accuracy": model["public"]["accuracy"],
            "private_accuracy": model["private"]["accuracy"],
            "private_macro_f1": model["private"]["macro_f1"],
            "gflops": model["gflops"],
            "efficiency": model["efficiency"],
            "train_minutes": model["train_minutes"],
        }
        if "tta_accuracy" in model["private"]:
            record |= {
                "tta": tta,
                "public_tta_accuracy": model["public"]["tta_accuracy"],
                "private_tta_accuracy": model["private"]["tta_accuracy"],
                "tta_gflops": round(model["gflops"] * views, 6),
            }
        records.append(record)
    return records


def markdown(spec: Spec, records: list[dict[str, Any]]) -> str:
    factors = list(spec.factors)
    with_tta = any("tta" in r for r in records)
    head = [*factors, "PublicTest acc", "PrivateTest acc", "PrivateTest macro-F1"]
    head += ["GFLOPs", "efficiency"]
    if with_tta:
        head += ["PublicTest acc TTA", "PrivateTest acc TTA", "GFLOPs x views"]
    head += ["train min", "experiment"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cells = ["Y" if r[f] else "N" for f in factors]
        if r["status"] != "done":
            cells += [f"failed: {r['error']}"] + [""] * (len(head) - len(factors) - 2)
        else:
            cells += [f"{r['public_accuracy']:.4f}", f"{r['private_accuracy']:.4f}"]
            cells += [f"{r['private_macro_f1']:.4f}", f"{r['gflops']:.5f}"]
            cells += [f"{r['efficiency']:.0f}"]
            if with_tta:
                tta = "tta" in r
                cells += [f"{r['public_tta_accuracy']:.4f}" if tta else ""]
                cells += [f"{r['private_tta_accuracy']:.4f}" if tta else ""]
                cells += [f"{r['tta_gflops']:.5f}" if tta else ""]
            cells += [f"{r['train_minutes']:.1f}"]
        cells += [r["experiment"]]
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({str(r.get("source")) for r in records if r["status"] == "done"})
    settings = "; ".join(
        f"{f}: " + ", ".join(f"{k}={_set_value(v)}" for k, v in s.items())
        for f, s in spec.factors.items()
    )
    base = ", ".join(f"{k}={_set_value(v)}" for k, v in spec.base.items()) or "params.yaml"
    return "\n".join(
        [
            f"Ablation `{spec.name}` ({spec.design}), the {MODEL} model of each experiment.",
            "",
            *lines,
            "",
            f"Data: {', '.join(sources) or 'none'}. Every row: {base}. Factors: {settings}.",
            "PublicTest chose each run's kept epoch; PrivateTest chose nothing and is reported. "
            "Efficiency = PrivateTest accuracy % / GFLOPs (single view).",
            "",
        ]
    )


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower) and accuracy (higher)."""
    front, best = [], -float("inf")
    for gflops, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append((gflops, accuracy))
            best = accuracy
    return front


def frontier_points(records: list[dict[str, Any]]) -> list[tuple[str, float, float, bool]]:
    """(label, GFLOPs, PrivateTest %, with TTA) for every finished row, single view and, where
    the row evaluated with TTA, with it too: both are ways to deploy that model."""
    points = []
    for r in records:
        if r["status"] != "done":
            continue
        points.append((r["experiment"], r["gflops"], 100 * r["private_accuracy"], False))
        if "tta_gflops" in r:
            label = f"{r['experiment']} + TTA"
            points.append((label, r["tta_gflops"], 100 * r["private_tta_accuracy"], True))
    return points


def _label_offsets(points: list[tuple[str, float, float, bool]], gap: float) -> list[float]:
    """Vertical label offsets (points) so that labels of dots at the same cost and nearly the
    same accuracy (closer than `gap` accuracy points) are stacked, not printed over each other."""
    offsets = [0.0] * len(points)
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][2]))
    for before, i in itertools.pairwise(order):
        same_x = points[i][1] == points[before][1]
        if same_x and points[i][2] - points[before][2] < gap:
            offsets[i] = offsets[before] + 9
    return offsets


def plot_frontier(spec: Spec, records: list[dict[str, Any]], path: Path) -> None:
    from ferx.plots import plt, save_figure

    done = [r for r in records if r["status"] == "done"]
    fig, ax = plt.subplots(figsize=(7.4, 5.0))
    points = frontier_points(records)
    span = max((p[2] for p in points), default=1) - min((p[2] for p in points), default=0)
    for (label, x, y, tta), dy in zip(
        points, _label_offsets(points, 0.04 * span + 0.3), strict=True
    ):
        style = {"facecolors": "none", "edgecolors": "tab:blue"} if tta else {"color": "tab:blue"}
        ax.scatter(x, y, s=50, zorder=3, **style)
        # TTA points sit at 2-10x the cost of their row: label them below, the rows above
        up = dy - 12 if tta else dy + 4
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, up), fontsize=7)
    front = pareto([(x, y) for _, x, y, _ in points])
    if front:
        ax.plot(*zip(*front, strict=True), color="tab:blue", lw=1, label="Pareto front (ours)")
    if any(p[3] for p in points):
        ax.scatter([], [], s=50, facecolors="none", edgecolors="tab:blue", label="ours, with TTA")
    for ref in REFERENCES:
        if "gflops" in ref:
            ax.scatter(
                ref["gflops"],
                100 * ref["accuracy"],
                s=60,
                facecolors="none",
                edgecolors="tab:red",
                zorder=3,
            )
            ax.annotate(
                ref["label"],
                (ref["gflops"], 100 * ref["accuracy"]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=7,
                color="tab:red",
            )
        else:  # no measured cost: a level line, not a point placed at a guessed x
            ax.axhline(100 * ref["accuracy"], color="tab:red", lw=0.8, ls=":")
            ax.annotate(
                ref["label"],
                (0.01, 100 * ref["accuracy"]),
                xycoords=("axes fraction", "data"),
                textcoords="offset points",
                xytext=(0, 2),
                fontsize=7,
                color="tab:red",
            )
    ax.set_xscale("log")
    ax.margins(x=0.4)
    top = max([100 * ref["accuracy"] for ref in REFERENCES] + [p[2] for p in points])
    ax.set_ylim(top=top + 3)  # room for the published level lines' labels
    source = ", ".join(sorted({str(r.get("source")) for r in done})) or "no"
    ax.set(
        xlabel="GFLOPs per 48x48 face (fvcore; log scale)",
        ylabel="PrivateTest accuracy (%)",
        title=f"Ablation {spec.name}: accuracy vs cost ({source} data); red: published",
    )
    ax.grid(alpha=0.3, which="both")
    if front:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)
    save_figure(fig, path)


def write_outputs(spec: Spec, records: list[dict[str, Any]], out_dir: Path) -> None:
    write_json(out_dir / "table.json", records)
    text = markdown(spec, records)
    write_atomic(out_dir / "table.md", lambda tmp: tmp.write_text(text))
    plot_frontier(spec, records, out_dir / "frontier.png")
    print(text)


def run(spec: Spec, jobs: int, collect_only: bool, out_root: Path = Path("ablation")) -> int:
    rows = make_rows(spec)
    failed: dict[str, str] = {}
    if not collect_only:
        queued = queue_rows(rows, experiments())
        print(
            f"ablate: {len(rows)} rows, {len(rows) - len(queued)} already done, "
            f"{len(queued)} queued"
        )
        if queued:
            states = wait_for(queued, jobs)
            failed = {n: failure_reason(n) for n, s in states.items() if s == "Failed"}
            failed |= {
                n: "lost: `dvc queue status` stopped listing it before it ended"
                for n, s in states.items()
                if s == "Lost"
            }
    records = table_rows(spec, rows, experiments(), failed)
    write_outputs(spec, records, out_root / spec.name)
    return 0 if all(r["status"] == "done" for r in records) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferx-ablate", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="the ablation spec (YAML), e.g. ablations/recipe.yaml")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="experiments run at once")
    parser.add_argument("--collect-only", action="store_true", help="only collect and render")
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise SpecError("--jobs: must be at least 1")
        return run(load_spec(args.spec), args.jobs, args.collect_only)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
