"""Headless Chromium with no network, for checking pages the way a person would see them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",  # let every asynchronous render finish
    "--enable-logging=stderr",
    "--v=0",
    "--dump-dom",
]


def offline_dom(page: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, with no network at all (`unshare -n`: a new
    network namespace holds only a loopback that is down), and the console errors."""
    assert CHROMIUM, "chromium is not installed"
    with tempfile.TemporaryDirectory() as profile:
        command = [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", page.resolve().as_uri()]
        result = subprocess.run(
            ["unshare", "-n", *command], capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 0, result.stderr[-2000:]
    errors = [
        line
        for line in result.stderr.splitlines()
        if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)
    ]
    return result.stdout, errors


class _Marks(HTMLParser):
    """For every <div id=...>: does a Vega drawing (svg or canvas of class 'marks') sit in it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []  # the div id of each open element, or None
        self.drawn: dict[str, bool] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        div = attrs.get("id") if tag == "div" else None
        if div:
            self.drawn.setdefault(div, False)
        if tag in ("svg", "canvas") and "marks" in (attrs.get("class") or "").split():
            for open_div in self.stack:
                if open_div:
                    self.drawn[open_div] = True
        if tag not in ("img", "br", "meta", "input", "link", "hr", "path", "rect", "line"):
            self.stack.append(div)

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()


def drawn_divs(dom: str) -> dict[str, bool]:
    parser = _Marks()
    parser.feed(dom)
    return parser.drawn
