"""Which model is released as the fast one (issue 43): the cheapest point of a speed-accuracy
frontier that meets the goal against `fer`, read on PublicTest.

The goal: at least `min_speedup` times `fer`'s faces/s at batch 1, measured in the same run on
the same CPU, and not behind `fer` in accuracy or macro-F1. Every figure compared is
PublicTest's (the split that chooses); PrivateTest is reported by whoever prints the choice.
No caller yet: the fast model's frontier study (issue 43, item 3) and the release will use it.
"Cheapest" is the most faces/s: speed is what the fast model is for, and a slower point that
also meets the goal buys accuracy the accurate model already offers. Ties go to the higher
accuracy, then the name, so the choice never depends on the table's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SPEEDUP = 1.5  # issue 43: at least 1.5x fer's faces/s at batch 1 (aim: 2x)


@dataclass(frozen=True)
class Point:
    """One model on the frontier, or the anchor: PublicTest figures and measured speed."""

    name: str
    accuracy: float  # PublicTest, a fraction
    macro_f1: float  # PublicTest, a fraction
    faces_per_s: float  # batch 1, measured in the same run as the anchor's


@dataclass(frozen=True)
class Choice:
    """The chosen point (None when no point meets the goal) and, per point, why it is out."""

    chosen: Point | None
    shortfalls: dict[str, str]


def shortfall(point: Point, anchor: Point, min_speedup: float = MIN_SPEEDUP) -> str:
    """What keeps `point` from the goal, in one line; empty when it meets it (the figures
    checked by choose_fast_model)."""
    missing = []
    if point.faces_per_s < min_speedup * anchor.faces_per_s:
        missing.append(
            f"{point.faces_per_s / anchor.faces_per_s:.3f}x {anchor.name}'s faces/s, "
            f"under {min_speedup:g}x"
        )
    if point.accuracy < anchor.accuracy:
        missing.append(
            f"PublicTest accuracy {100 * point.accuracy:.2f} % < {100 * anchor.accuracy:.2f} %"
        )
    if point.macro_f1 < anchor.macro_f1:
        missing.append(
            f"PublicTest macro-F1 {100 * point.macro_f1:.2f} % < {100 * anchor.macro_f1:.2f} %"
        )
    return "; ".join(missing)


def choose_fast_model(
    points: list[Point], anchor: Point, min_speedup: float = MIN_SPEEDUP
) -> Choice:
    """The fastest point that meets the goal (ties: higher accuracy, then name)."""
    for point in (anchor, *points):
        figures = (point.accuracy, point.macro_f1, point.faces_per_s)
        if not all(math.isfinite(f) for f in figures) or point.faces_per_s <= 0:
            raise ValueError(
                f"choose_fast_model: {point.name} needs finite figures and positive faces/s, "
                f"got {figures}"
            )
    names = [p.name for p in points]
    if len(set(names)) < len(names):
        raise ValueError(f"choose_fast_model: each point once, got {names}")
    shortfalls = {p.name: shortfall(p, anchor, min_speedup) for p in points}
    meeting = [p for p in points if not shortfalls[p.name]]
    if not meeting:
        return Choice(None, shortfalls)
    best = min(meeting, key=lambda p: (-p.faces_per_s, -p.accuracy, p.name))
    return Choice(best, {name: why for name, why in shortfalls.items() if why})
