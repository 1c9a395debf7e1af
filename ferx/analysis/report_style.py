"""The report page's CSS: one inline <style>, so the page is one file that opens offline."""

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th:first-child,td:first-child{text-align:left}
figure{margin:.5em 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%} figcaption{font-size:.75em;color:#666}
.row{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
.row>*{min-width:0;max-width:100%}
.row figure img{max-width:520px}
.banner{padding:.7em 1em;font-weight:bold;border-radius:4px}
.synthetic{background:#fde2e2;border:2px solid #c00;color:#900}
.real{background:#e3f4e3;border:1px solid #393}
.sources{font-size:.78em;color:#666} .missing,.wrong{color:#c00}
.note{background:#fff6d5;padding:.4em}
.freshness{padding:.3em .6em;border-radius:4px;font-size:.9em}
.freshness.current{background:#e3f4e3;border:1px solid #393}
.freshness.stale,.freshness.unknown{background:#fde2e2;border:1px solid #c00;color:#900}
nav a{margin-right:1em}
"""
