"""What a training run shows while it runs: DVCLive's per-epoch metrics, one log line per
epoch, and the history as a markdown table."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferx.training.run_spec import RunSpec


def open_live(spec: RunSpec, history: list[dict[str, float]]):
    """A fresh DVCLive folder with the resumed epochs replayed, so curves are whole."""
    if spec.live_dir is None:
        return None
    from dvclive import Live

    live = Live(str(spec.live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    for row in history:
        live_log(live, row)
    return live


def live_log(live, row: dict[str, float]) -> None:
    live.step = int(row["epoch"])
    for name, value in row.items():
        if name not in ("epoch", "seconds"):
            live.log_metric(name, value)
    live.next_step()


def log_epoch(name: str, row: dict, epochs: int, improved: bool, metric: str) -> None:
    mark = f"  * best public {metric}" if improved else ""
    print(
        f"{name} epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.2e}  "
        f"train {row['train/loss']:.4f} / {row['train/accuracy']:.4f}  "
        f"public {row['public/loss']:.4f} / {row['public/accuracy']:.4f}  "
        f"private {row['private/loss']:.4f} / {row['private/accuracy']:.4f}  "
        f"({row['seconds']:.1f} s){mark}",
        flush=True,
    )


def history_table(history: list[dict[str, float]]) -> str:
    """A markdown table of the per-epoch metrics (for logs and notes)."""
    head = (
        "| epoch | mean lr | train loss | train acc | public loss | public acc | private acc | s |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in history:
        lines.append(
            f"| {r['epoch']} | {r['lr']:.2e} | {r['train/loss']:.4f} | {r['train/accuracy']:.4f} "
            f"| {r['public/loss']:.4f} | {r['public/accuracy']:.4f} | {r['private/accuracy']:.4f} "
            f"| {r['seconds']:.1f} |"
        )
    return "\n".join(lines)
