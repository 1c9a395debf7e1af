"""What each stage imports is what dvc.yaml says it depends on, and no stage imports more
than it needs (the prepare stage must not pay for torch)."""

import subprocess
import sys

import pytest
import yaml

from ferx.training.source_code import (
    PACKAGE_DIR,
    import_closure,
    imported_modules,
    module_name,
    relative_name,
)
from tests.conftest import PROJECT_ROOT

STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def _code_deps(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if isinstance(d, str) and d.startswith("ferx/")}


def test_every_stage_declares_exactly_the_ferx_modules_its_script_imports():
    for name, stage in STAGES.items():
        script = PROJECT_ROOT / "stages" / f"{name}.py"
        assert f"stages/{name}.py" in stage["deps"], name
        closure = {relative_name(path) for path in import_closure([script])}
        declared = _code_deps(stage)
        assert closure - declared == set(), f"{name}: dvc.yaml misses {sorted(closure - declared)}"
        assert declared - closure == set(), f"{name}: dvc.yaml lists {sorted(declared - closure)}"


def test_the_closure_follows_imports_inside_functions_and_from_package_imports(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(
        "def main():\n    from ferx.analysis.compare import compare\n    import ferx.labels\n"
    )
    names = {path.name for path in import_closure([script])}
    assert {"compare.py", "labels.py", "plots.py", "atomic.py"} <= names  # plots: compare's own
    assert "loop.py" not in names and "run.py" not in names


def test_importing_the_prepare_stage_loads_no_torch_captum_or_matplotlib():
    modules = sorted(
        module_name(path) for path in import_closure([PROJECT_ROOT / "stages/prepare.py"])
    )
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "heavy = sorted({'torch', 'captum', 'matplotlib', 'torchvision'} & set(sys.modules))\n"
        + "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "ferx.data.prepare" in modules and "ferx.cli" in modules
    assert result.stdout.strip() == "", f"the prepare stage imports {result.stdout.strip()}"


@pytest.mark.slow
def test_a_stage_runs_the_ferx_of_its_own_workspace_not_an_installed_copy(tmp_path):
    # DVC runs queued experiments in temporary copies of the repository; a stage that imported
    # the installed (editable) ferx would run the main workspace's code, whatever the
    # experiment's commit holds, and its recorded code dependencies would be wrong
    from tests.conftest import dvc, make_dvc_project

    root = make_dvc_project(tmp_path, {"prepare": {"synthetic": {"n_samples": 70}}})
    with (root / "ferx/data/prepare.py").open("a") as module:
        module.write("\nprint('ferx of this workspace:', __file__)\n")
    out = dvc(root, "repro", "prepare").stdout
    assert f"ferx of this workspace: {root / 'ferx/data/prepare.py'}" in out


def test_improve_declares_exactly_the_train_params_it_reads():
    # improve runs on the train section with its own epochs, lr, schedule, ... on top
    from ferx.params import ImproveParams, TrainParams

    declared = set(STAGES["improve"]["params"])
    reads = {f"train.{key}" for key in TrainParams.model_fields} - {
        f"train.{key}" for key in ImproveParams.OWN_KEYS
    }
    assert {p for p in declared if p.startswith("train")} == reads
    assert {"improve", "prepare.out_dir"} <= declared
    assert set(ImproveParams.OWN_KEYS) <= set(ImproveParams.model_fields)
    # and it reads no model file of its own choosing: improve_init says what it starts from
    assert "models/baseline.pt" not in STAGES["improve"]["deps"]
    assert "models/improve_init" in STAGES["improve"]["deps"]


def test_run_stage_gives_torch_the_threads_runtime_names(tmp_path, monkeypatch):
    import torch

    from ferx.cli import run_stage

    (tmp_path / "params.yaml").write_text("runtime:\n  threads: 1\n")
    monkeypatch.setenv("FERX_PARAMS", str(tmp_path / "params.yaml"))
    before, seen = torch.get_num_threads(), []
    try:
        torch.set_num_threads(2)
        run_stage(lambda params: seen.append(torch.get_num_threads()))
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


# ARCHITECTURE.md's code map: which layer of ferx may import which ("top" = ferx/*.py)
MAY_IMPORT = {
    "top": {"top"},
    "data": {"top", "data"},
    "models": {"top", "models"},
    "training": {"top", "data", "models", "training"},
    "analysis": {"top", "data", "models", "analysis", "experiments.stats"},
    "deploy": {"top", "data", "models", "deploy"},
    "experiments": {"top", "experiments", "analysis.cost_figure", "data.notes"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and not (PACKAGE_DIR / parts[1]).is_dir():
        return "top"
    return parts[1]


def test_each_layer_imports_only_what_the_code_map_allows():
    broken = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = module_name(path)
        if module == "ferx":
            continue
        allowed = MAY_IMPORT[_layer(module)]
        imports = imported_modules(path) - {"ferx"}

        def ok(imported: str, allowed=allowed, imports=imports) -> bool:
            layer, detail = _layer(imported), ".".join(imported.split(".")[1:3])
            if layer in allowed or detail in allowed:
                return True
            # a package's __init__ runs below an allowed module of it (analysis.explain)
            return imported.count(".") == 1 and any(
                other.startswith(f"{imported}.") and ok(other) for other in imports
            )

        broken += [f"{module} imports {m}" for m in sorted(imports) if not ok(m)]
    assert broken == []


class _ParamsSpy:
    """Records which params (dotted keys) code reads from a Params object: attribute reads of
    its sections' fields, whole sections dumped (model_dump), and copies (model_copy: the
    copy's replaced keys read as the section that supplied them, as improve's train copy)."""

    def __init__(self, monkeypatch, params) -> None:
        from pydantic import BaseModel

        from ferx.params import ImproveParams, Section

        self.reads: set[str] = set()
        self.paths: dict[int, str] = {}
        self.renamed: dict[int, dict[str, str]] = {}  # copy -> key -> where its value came from
        self.alive: list[object] = [params]  # ids must stay unique while we map them
        self._walk(params, "")
        spy = self

        def getattribute(node, name):
            value = object.__getattribute__(node, name)
            # values only: passing through a section (params.train.model) reads none of it
            if (
                name in type(node).model_fields
                and not isinstance(value, BaseModel)
                and (prefix := spy.paths.get(id(node))) is not None
            ):
                spy._read(node, prefix, name)
            return value

        def model_dump(node, *args, **kwargs):
            spy._read_all(node)
            return BaseModel.model_dump(node, *args, **kwargs)

        def model_copy(node, *args, update=None, **kwargs):
            copy = BaseModel.model_copy(node, *args, update=update, **kwargs)
            spy.alive.append(copy)
            prefix = spy.paths.get(id(node))
            if prefix is not None:
                spy.paths[id(copy)] = prefix
                spy.renamed[id(copy)] = dict(spy.renamed.get(id(node), {}))
            return copy

        def train_params(improve, train):  # improve's own keys replace train's
            copy = original(improve, train)
            for key in ImproveParams.OWN_KEYS:
                spy.renamed.setdefault(id(copy), {})[key] = f"improve.{key}"
            return copy

        original = ImproveParams.train_params
        monkeypatch.setattr(Section, "__getattribute__", getattribute)
        monkeypatch.setattr(Section, "model_dump", model_dump)
        monkeypatch.setattr(Section, "model_copy", model_copy)
        monkeypatch.setattr(ImproveParams, "train_params", train_params)

    def _walk(self, node, prefix: str) -> None:
        from pydantic import BaseModel

        self.paths[id(node)] = prefix
        for name in type(node).model_fields:
            value = object.__getattribute__(node, name)
            if isinstance(value, BaseModel):
                self._walk(value, f"{prefix}.{name}" if prefix else name)

    def _read(self, node, prefix: str, name: str) -> None:
        where = self.renamed.get(id(node), {}).get(name)
        self.reads.add(where or (f"{prefix}.{name}" if prefix else name))

    def _read_all(self, node) -> None:
        from pydantic import BaseModel

        prefix = self.paths.get(id(node))
        if prefix is None:
            return
        for name in type(node).model_fields:
            value = object.__getattribute__(node, name)
            if isinstance(value, BaseModel):
                self._read_all(value)
            else:
                self._read(node, prefix, name)


def _covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(f"{d}.") for d in declared)


@pytest.mark.slow
def test_every_stage_reads_exactly_the_params_dvc_yaml_declares(tmp_path, monkeypatch):
    # a param a stage reads but does not declare would not rerun it when changed (a stale
    # result); one it declares but never reads reruns it for nothing
    import torch

    from ferx.params import validate_params

    monkeypatch.chdir(tmp_path)
    params = validate_params(
        {
            "prepare": {"synthetic": {"n_samples": 120}},
            "train": {"epochs": 1, "batch_size": 32},
            "improve": {"epochs": 1},
            "evaluate": {"tta": "flip"},
            "runtime": {"threads": 1},
        }
    )
    (tmp_path / "data/user_probes").mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        undeclared, unread = _stage_reads(params)
    finally:
        torch.set_num_threads(threads)
    assert undeclared == {}, f"read but not declared in dvc.yaml: {undeclared}"
    assert unread == {}, f"declared in dvc.yaml but never read: {unread}"


def _stage_reads(params) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Run every stage in-process in the current folder, in order: (stage -> params it read
    but does not declare, stage -> params it declares but never read)."""
    import importlib

    calls = [("prepare", ()), ("probes", ()), ("train", ()), ("improve_init", ()), ("improve", ())]
    calls += [("evaluate", (m, s)) for m in ("baseline", "improved")
              for s in ("public_test", "private_test")]  # fmt: skip
    calls += [("explain", (m,)) for m in ("baseline", "improved")]
    calls += [("export", (m,)) for m in ("baseline", "improved")]
    calls += [("cost", ()), ("compare", ()), ("plots_page", ()), ("report", ())]
    assert {name for name, _ in calls} == set(STAGES)
    undeclared, unread = {}, {}
    for name, args in calls:
        with pytest.MonkeyPatch.context() as patch:  # undone after each stage; not the chdir
            spy = _ParamsSpy(patch, params)
            importlib.import_module(f"stages.{name}").main(params, *args)
        declared = STAGES[name].get("params") or []
        reads = {r for r in spy.reads if r.split(".")[0] != "runtime"}
        if missing := sorted(r for r in reads if not _covered(r, declared)):
            undeclared[name] = missing
        # the report declares the sections a run's key holds for its tables' freshness,
        # which it reads from params.yaml itself (ferx.experiments.freshness)
        if name != "report" and (
            idle := [d for d in declared if not any(_covered(r, [d]) for r in reads)]
        ):
            unread[name] = idle
    return undeclared, unread
