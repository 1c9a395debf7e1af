"""The pipeline's output paths are named in one place (ferx.paths): dvc.yaml's outs say the
same, and no stage script or library module spells one itself."""

import ast
from pathlib import Path

import yaml

from ferx import paths
from tests.conftest import PROJECT_ROOT

PIPELINE = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
# the top folders of what the stages write; a string naming a path below one of them (or a
# Path of the folder itself) outside ferx/paths.py is a second place for it
OUTPUT_ROOTS = {"metrics", "models", "plots", "dvclive", "checkpoints", "report", "ablation"}


def _training(run: paths.TrainingOutputs) -> set[Path]:
    return {run.model_path, run.metrics_path, run.live_dir, run.plots_dir}


def _expected_outs() -> dict[str, set[Path]]:
    """stage (or matrix cell, as DVC names it) -> the outs ferx.paths says it writes."""
    expected = {
        "prepare": {Path(PARAMS["prepare"]["out_dir"]), paths.PREPARE_SUMMARY},
        "probes": {Path(PARAMS["prepare"]["probes_dir"])},
        "train": _training(paths.TRAIN),
        "improve_init": {paths.IMPROVE_INIT},
        "improve": _training(paths.IMPROVE),
        "compare": {paths.COMPARE_PLOTS, paths.COMPARE, paths.SUMMARY},
        "cost": {paths.COST_PLOTS, paths.COST},
        "plots_page": {paths.PLOTS_TEMPLATE},
        "report": {paths.REPORT_PAGE, paths.MODEL_CARD},
    }
    for model in paths.MODEL_NAMES:
        for split in ("public_test", "private_test"):
            expected[f"evaluate@{model}-{split}"] = {
                paths.evaluation_plots(model, split),
                paths.evaluation(model, split),
            }
        expected[f"explain@{model}"] = {paths.explain_plots(model), paths.explanation(model)}
        expected[f"export@{model}"] = {paths.onnx_file(model), paths.export_report(model)}
    return expected


def _declared_outs() -> dict[str, set[Path]]:
    """stage (or matrix cell) -> the outs dvc.yaml declares, ${...} filled in."""

    def fill(text: str, item: dict[str, str]) -> Path:
        for key, value in item.items():
            text = text.replace(f"${{item.{key}}}", value)
        for key in ("out_dir", "probes_dir"):
            text = text.replace(f"${{prepare.{key}}}", PARAMS["prepare"][key])
        assert "${" not in text, text
        return Path(text)

    declared = {}
    for name, stage in PIPELINE["stages"].items():
        matrix = stage.get("matrix")
        cells = [{}]
        if matrix:
            for key, values in matrix.items():
                cells = [cell | {key: value} for cell in cells for value in values]
        for cell in cells:
            label = name + ("@" + "-".join(cell.values()) if cell else "")
            outs = [
                entry if isinstance(entry, str) else next(iter(entry))
                for kind in ("outs", "metrics", "plots")
                for entry in stage.get(kind) or []
            ]
            declared[label] = {fill(out, cell) for out in outs}
    return declared


def test_dvc_yaml_declares_the_outputs_ferx_paths_names_and_no_other():
    assert _declared_outs() == _expected_outs()


def test_the_files_a_stage_writes_lie_in_the_folders_dvc_yaml_declares():
    declared = set().union(*_declared_outs().values())
    written = [
        paths.RECALL_RECORDS,
        paths.RECALL_FIGURE,
        paths.COMPARE_TABLE,
        paths.COST_FIGURE,
        *(paths.TRAIN.curve_figure(m) for m in paths.CURVES),
        *(paths.IMPROVE.live_series("train", m) for m in paths.CURVES),
        paths.confusion_records("baseline", "private_test"),
        paths.confusion_figure("improved", "public_test"),
        paths.gradcam_figure("baseline", "test"),
        paths.activations_figure("improved", "test2"),
    ]
    for path in written:
        assert any(path == out or out in path.parents for out in declared), path


def _spelled_output_paths(source: Path) -> list[tuple[int, str]]:
    """String constants (not docstrings) naming a path under an output folder, and
    Path("<output folder>") calls, in one Python file."""
    tree = ast.parse(source.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if id(node) in docstrings or " " in text:
                continue
            if text.split("/")[0] in OUTPUT_ROOTS and "/" in text:
                found.append((node.lineno, text))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path":
            found += [
                (node.lineno, arg.value)
                for arg in node.args
                if isinstance(arg, ast.Constant) and arg.value in OUTPUT_ROOTS
            ]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found += [  # root / "metrics" / name
                (node.lineno, side.value)
                for side in (node.left, node.right)
                if isinstance(side, ast.Constant) and side.value in OUTPUT_ROOTS
            ]
    return found


def test_no_stage_or_library_module_spells_an_output_path_itself():
    sources = sorted((PROJECT_ROOT / "stages").glob("*.py"))
    sources += sorted((PROJECT_ROOT / "ferx").rglob("*.py"))
    assert len(sources) > 50 and PROJECT_ROOT / "stages/train.py" in sources
    spelled = {
        str(source.relative_to(PROJECT_ROOT)): hits
        for source in sources
        if source != PROJECT_ROOT / "ferx/paths.py" and (hits := _spelled_output_paths(source))
    }
    assert spelled == {}


def test_the_check_finds_a_spelled_path(tmp_path):
    source = tmp_path / "stage.py"
    source.write_text(
        '"""writes metrics/x.json"""\n'
        'from pathlib import Path\nA = Path("models") / "b.pt"\nB = f"plots/eval/{A}"\n'
        'C = "metrics"  # a key, not a path\n'
        'D = Path(".") / "ablation" / "x"\nE = Path(C, "report")\n'
    )
    found = sorted(_spelled_output_paths(source))
    assert found == [(3, "models"), (4, "plots/eval/"), (6, "ablation"), (7, "report")]
