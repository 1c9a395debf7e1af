"""What a feature needs beyond prediction's packages, and the one-line error that says so: the
package alone (numpy, Pillow, ONNX Runtime) predicts with ONNX models; the pipeline, `.pt`
models and videos need extras. Apart from ferx.errors so that no stage depends on it."""

from __future__ import annotations

from ferx.errors import UserError


class MissingExtra(UserError):
    """A feature whose packages this installation lacks (prediction alone installs no torch)."""


def require(module: str, purpose: str, extra: str) -> None:
    """Raise MissingExtra, naming the extra to install, when `module` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"{purpose} needs {module}, which this installation lacks: install ferx with its "
            f"{extra} extra (from a clone: pip install -e '.[{extra}]')"
        )
