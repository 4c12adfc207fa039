"""The offline page of `dvc plots show`: the committed template inlines Vega, and the check
catches external references and missing selectors."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from coreset.experiments.report import offline

ROOT = Path(__file__).resolve().parents[1]


def test_build_inlines_the_scripts_and_keeps_only_dvcs_page_placeholders(tmp_path):
    scripts = []
    for name in ("vega", "vega-lite", "vega-embed"):
        scripts.append(tmp_path / f"{name}.min.js")
        scripts[-1].write_text(f"var {name.replace('-', '_')} = {{a: 1}};")
    page = offline.build(scripts)
    assert page.index("var vega =") < page.index("var vega_lite =") < page.index("var vega_embed")
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN <script src=...> tags


def test_build_refuses_a_script_that_would_close_its_tag(tmp_path):
    bad = tmp_path / "bad.js"
    bad.write_text("x = '</script>';")
    with pytest.raises(ValueError, match="cannot be inlined"):
        offline.build([bad, bad, bad])


@pytest.mark.parametrize("html", [
    '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>',
    "<script type='text/javascript' src='http://x/y.js'></script>",
    '<link rel="stylesheet" href="//fonts.example.com/a.css">',
    "<style>@import 'https://x/y.css';</style>",
    '<div style="background: url(https://x/y.png)"></div>',
])
def test_check_finds_every_external_reference(html):
    page = f'<html>{html}"full" "a"</html>'
    assert offline.problems(page, ["full", "a"])
    assert not offline.problems('<html>"full" "a"</html>', ["full", "a"])


def test_check_names_a_missing_selector():
    assert offline.problems('<html>"full"</html>', ["full", "el2n"]) == [
        "selector 'el2n' does not appear in the page"]


def test_the_committed_template_is_offline_and_configured():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    template = ROOT / ".dvc" / config["plots"]["html_template"]
    page = template.read_text(encoding="utf-8")
    assert not [p for p in offline.problems(page, []) if p.startswith("external")]
    assert "{scripts}" not in page and "{plot_divs}" in page
    for library in ("vega=", "vegaLite=", "vegaEmbed="):  # the three UMD bundles define these
        assert f").{library}" in page.replace(" ", "")
