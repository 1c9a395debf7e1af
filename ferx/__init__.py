"""ferx: a reproducible mini-Xception facial-expression pipeline on FER2013.

The Python API is `from ferx import Recognizer` (ferx/deploy/recognizer.py), loaded on first
use, so that `import ferx` (every stage's first import) stays free of numpy, PIL and ONNX.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Face", "Recognizer", "RecognizerError", "__version__"]
_API = ("Face", "Recognizer", "RecognizerError")


def __getattr__(name: str) -> Any:
    if name in _API:
        # importlib, not an import statement: no stage takes this path, and the stages' code
        # dependencies (ferx/training/source_code.py) follow import statements, which would
        # make every stage depend on the prediction code
        return getattr(importlib.import_module("ferx.deploy.recognizer"), name)
    raise AttributeError(f"module 'ferx' has no attribute {name!r}")
