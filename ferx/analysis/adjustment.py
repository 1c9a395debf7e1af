"""How the report, model card and compare table say what post-hoc logit adjustment did (read
from the improve run's metrics; no torch here)."""

from __future__ import annotations

from typing import Any


def adjustment_phrase(record: dict[str, Any] | None) -> str | None:
    """How a run's metrics (`logit_adjustment`) say the logits were adjusted, or None when
    they were not: "minus 0.4 x log prior (tau chosen on PublicTest macro-F1)"."""
    record = record or {}
    if tau := record.get("tau"):
        return f"minus {tau:g} x log prior (tau chosen on PublicTest macro-F1)"
    offsets = {n: v for n, v in (record.get("offsets") or {}).items() if v}
    if offsets:
        chosen = ", ".join(f"{n} {v:+.1f}" for n, v in offsets.items())
        return f"plus per-class offsets {chosen} (chosen on PublicTest macro-F1)"
    return None
