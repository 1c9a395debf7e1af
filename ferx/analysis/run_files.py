"""The reader of a finished run's files (their names: ferx.paths) for the report and the
model card, which remembers which it read (each section names its sources). Reads JSON, TSV
and PNG only: no torch."""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Any

from ferx.errors import UserError


class ReportError(UserError):
    """A file the report is written from is missing or unreadable."""


class RunFiles:
    """Reads the run's files relative to `root` and remembers which were read, per section."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.read: list[str] = []

    def path(self, name: str | Path) -> Path:
        return self.root / name

    def exists(self, name: str | Path) -> bool:
        return self.path(name).is_file()

    def json(self, name: str | Path) -> dict[str, Any]:
        try:
            data = json.loads(self.path(name).read_text())
        except FileNotFoundError:
            raise ReportError(f"{name}: not found (run `dvc repro` first)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReportError(f"{name}: not valid JSON ({exc})") from None
        self._note(name)
        return data

    def tsv(self, name: str | Path) -> list[dict[str, str]]:
        try:
            with self.path(name).open(newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
        except FileNotFoundError:
            raise ReportError(f"{name}: not found (run `dvc repro` first)") from None
        self._note(name)
        return rows

    def image(self, name: str | Path, alt: str) -> str:
        """An <img> with the PNG inline; a visible note if the file is missing."""
        path = self.path(name)
        if not path.is_file():
            return f'<p class="missing">missing figure: <code>{html.escape(str(name))}</code></p>'
        self._note(name)
        data = base64.b64encode(path.read_bytes()).decode()
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(str(alt))}">'
            f"<figcaption><code>{html.escape(str(name))}</code></figcaption></figure>"
        )

    def _note(self, name: str | Path) -> None:
        name = Path(name).as_posix()
        if name not in self.read:
            self.read.append(name)

    def since(self, start: int) -> list[str]:
        return self.read[start:]
