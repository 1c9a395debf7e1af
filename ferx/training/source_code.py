"""Which ferx source files a piece of code runs: the import closure inside the package.

Used by the resume fingerprint (a checkpoint is another run's once the training code
changed) and by the test that keeps each stage's code dependencies in dvc.yaml complete.
Found by reading the files (ast), so nothing is imported to answer. Importing
`ferx.models.inference` runs `ferx/__init__.py` and `ferx/models/__init__.py` too, so the
closure holds the packages' `__init__.py` files along the way.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name


def module_path(module: str) -> Path:
    """ferx.training.loop -> <package>/training/loop.py; a package -> its __init__.py."""
    parts = module.split(".")[1:]
    folder = PACKAGE_DIR.joinpath(*parts)
    if folder.is_dir():
        return folder / "__init__.py"
    return PACKAGE_DIR.joinpath(*parts[:-1], f"{parts[-1]}.py")


def _with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imported_modules(path: Path) -> set[str]:
    """The ferx modules a file imports anywhere (top level or inside functions), with the
    packages above them (whose __init__.py an import runs)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != PACKAGE:
                continue
            found.add(node.module)
            # `from ferx.models import checkpoint`: a submodule, not only a name
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if module_path(f"{node.module}.{a.name}").exists()
            }
    modules = set().union(*(_with_parents(m) for m in found)) if found else set()
    return {m for m in modules if module_path(m).exists()}


def import_closure(roots: list[str | Path]) -> list[Path]:
    """Every ferx source file reachable by imports from `roots` (module names or file paths),
    the roots that are ferx modules included, sorted."""
    seen: set[Path] = set()
    todo = [
        Path(r).resolve() if isinstance(r, Path) or str(r).endswith(".py") else module_path(r)
        for r in roots
    ]
    files: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.is_relative_to(PACKAGE_DIR):
            files.add(path)
        todo.extend(module_path(m) for m in imported_modules(path))
    return sorted(files)


def relative_name(path: Path) -> str:
    """ferx/training/loop.py for a path inside the package (the name dvc.yaml uses)."""
    return path.relative_to(PACKAGE_DIR.parent).as_posix()


def module_name(path: Path) -> str:
    """ferx.training.loop for <package>/training/loop.py; ferx.models for its __init__.py."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
