"""`ferx-ablate`'s old home: the tool now lives in ferx/experiments/ (one module a concern)."""

from ferx.experiments.cli import main

__all__ = ["main"]
