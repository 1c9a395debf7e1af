"""The Markdown ferx writes (the ablation tables: pipe tables and paragraphs, **bold** and
`code`) as HTML, for the report. Escapes everything else."""

from __future__ import annotations

import html
import re

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline_markdown(text: str) -> str:
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", html.escape(text)))


def markdown_to_html(text: str) -> str:
    """The Markdown ferx writes (ablation tables): pipe tables and paragraphs."""
    out, table = [], []

    def flush() -> None:
        if table:
            cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
            body = [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
            head = "".join(f"<th>{inline_markdown(c)}</th>" for c in cells[0])
            rows = "".join(
                "<tr>" + "".join(f"<td>{inline_markdown(c)}</td>" for c in r) + "</tr>"
                for r in body
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            table.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            table.append(line)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{inline_markdown(line)}</p>")
    flush()
    return "".join(out)
