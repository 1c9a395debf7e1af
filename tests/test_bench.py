"""Benchmark scripts: no figure without the machine it came from."""

import ast
import subprocess
import sys

import pytest

from ferx.cpu import describe_cpu
from tests.conftest import PROJECT_ROOT

SCRIPTS = sorted((PROJECT_ROOT / "bench").glob("*.py"))


def _printed_first(script) -> ast.expr | None:
    """What main()'s first print call prints (its first argument), in source order."""
    tree = ast.parse(script.read_text())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    calls = [
        node
        for node in ast.walk(main)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
    ]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))
    return calls[0].args[0] if calls and calls[0].args else None


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_benchmark_prints_the_cpu_first(script):
    first = _printed_first(script)
    assert isinstance(first, ast.Call) and getattr(first.func, "id", None) == "describe_cpu", (
        f"{script.name}: main() must print describe_cpu() before any figure"
    )


@pytest.mark.slow
def test_a_benchmark_run_starts_with_the_cpu_line():
    # bench_imports times each stage's imports in a subprocess: one repeat, 15-20 s
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench/bench_imports.py"), "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == describe_cpu()
