"""An HTML page template for `dvc plots show` / `dvc plots diff` that works offline.

DVC's default page loads Vega, Vega-Lite and vega-embed from a CDN, so without network every
Vega plot is blank. DVC fills a custom template (`plots.html_template` in .dvc/config) by
replacing `{plot_divs}` and, if present, `{scripts}` (where the CDN tags go). This template
inlines the three libraries from the JavaScript bundle that the vl-convert-python package
ships (it exposes `vega`, `vegaLite` and `vegaEmbed` on `window`, which DVC's plot divs call)
and has no `{scripts}` placeholder, so nothing is fetched.
"""

from __future__ import annotations

from pathlib import Path

from ferx.atomic import write_atomic

# DVC's plot templates are Vega-Lite v5 specs: bundle the newest v5 that vl-convert offers
VEGA_LITE_VERSION = "5.21"

# {refresh_tag} and {plot_divs} are DVC's placeholders; @NAME@ are filled in here
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC plots (ferx, offline)</title>
    <!-- Vega @VEGA@, Vega-Lite @VEGA_LITE@ and vega-embed @EMBED@, each BSD-3-Clause licensed
         (https://github.com/vega), bundled by vl-convert-python @VL_CONVERT@. -->
    <script type="text/javascript">
@BUNDLE@
    </script>
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def offline_template() -> str:
    """The page: DVC's placeholders, the three libraries inline, no `{scripts}`."""
    import vl_convert as vlc

    fields = {
        "@VEGA@": vlc.get_vega_version(),
        "@VEGA_LITE@": VEGA_LITE_VERSION,
        "@EMBED@": vlc.get_vega_embed_version(),
        "@VL_CONVERT@": vlc.__version__,
    }
    page = PAGE
    for marker, value in fields.items():
        page = page.replace(marker, value)
    return page.replace("@BUNDLE@", vlc.javascript_bundle(vl_version=VEGA_LITE_VERSION))


def write_offline_template(path: str | Path) -> None:
    page = offline_template()
    write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8"), suffix=".html")
