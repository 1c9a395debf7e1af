from ferx.analysis.plots_page import offline_template


def test_the_template_inlines_vega_and_fetches_nothing():
    page = offline_template()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN <script src=...> tags
    assert "<script src" not in page and "cdn." not in page
    assert "vegaEmbed" in page and "vegaLite" in page
    assert len(page) > 500_000  # the libraries themselves, not a link to them
