"""Which ferx source files a piece of code runs: the import closure inside the package.

Used by the resume fingerprint (a checkpoint is another run's once the training code
changed) and by the test that keeps each stage's code dependencies in dvc.yaml complete.
Found by reading the files (ast), so nothing is imported to answer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name


def module_path(module: str) -> Path:
    """ferx.train -> <package>/train.py (ferx -> <package>/__init__.py)."""
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_DIR / "__init__.py"
    return PACKAGE_DIR.joinpath(*parts[:-1], f"{parts[-1]}.py")


def imported_modules(path: Path) -> set[str]:
    """The ferx modules a file imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PACKAGE:  # from ferx import train
                found |= {f"{PACKAGE}.{a.name}" for a in node.names}
            elif node.module.split(".")[0] == PACKAGE:
                found.add(node.module)
    return {m for m in found if module_path(m).exists()}


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
        if path.parent == PACKAGE_DIR:
            files.add(path)
        todo.extend(module_path(m) for m in imported_modules(path))
    return sorted(files)
