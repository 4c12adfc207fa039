"""The offline page of ``dvc plots show`` / ``dvc plots diff``: build its HTML template with Vega,
Vega-Lite and vega-embed inlined, and check a rendered page.

DVC's default page loads the three scripts from a CDN, so offline it is blank. The committed
template ``.dvc/plots/offline.html`` (``plots.html_template`` in ``.dvc/config``) carries them
inline and has no ``{scripts}`` placeholder, which is where DVC would insert the CDN tags.

    python -m coreset.experiments.report.offline build VEGA VEGA_LITE VEGA_EMBED [--out PATH]
    python -m coreset.experiments.report.offline check dvc_plots/index.html [--params params.yaml]

``build`` takes the ``build/*.min.js`` files of the npm packages vega@5, vega-lite@5 and
vega-embed@6 (BSD-3-Clause, see ``.dvc/plots/LICENSE-vega``). ``check`` fails when the page
references anything over the network or lacks a selector of params.yaml (CI runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

TEMPLATE = Path(".dvc/plots/offline.html")
# an attribute or CSS import that the browser would fetch: src=/href= with a scheme or a
# protocol-relative //host, and url(http...) / @import
EXTERNAL = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*https?:"""
                      r"""|@import\s+["']?https?:)""", re.IGNORECASE)

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>coreset: DVC plots</title>
@SCRIPTS@
<style>
body { font-family: sans-serif; margin: 24px; }
table { border-spacing: 15px; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def build(scripts: list[Path]) -> str:
    """The HTML template with each script inlined, in order (vega, vega-lite, vega-embed)."""
    parts = []
    for path in scripts:
        js = path.read_text(encoding="utf-8")
        if "</script" in js.lower() or "{plot_divs}" in js:
            raise ValueError(f"{path}: cannot be inlined (contains </script or {{plot_divs}})")
        parts.append(f"<!-- {path.name} -->\n<script>\n{js}\n</script>")
    return PAGE.replace("@SCRIPTS@", "\n".join(parts))


def problems(page: str, selectors: list[str]) -> list[str]:
    """What is wrong with a rendered page: external references and selectors it does not name."""
    found = [f"external reference: {m.group(0)!r} at character {m.start()}"
             for m in EXTERNAL.finditer(page)]
    if "<script src" in page.replace(" = ", "=").lower():
        found.append("a <script src=...> tag: the scripts must be inline")
    found += [f"selector {name!r} does not appear in the page" for name in selectors
              if f'"{name}"' not in page]
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coreset.experiments.report.offline",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the offline HTML template")
    b.add_argument("scripts", nargs=3, type=Path, help="vega, vega-lite, vega-embed .min.js")
    b.add_argument("--out", type=Path, default=TEMPLATE)
    c = sub.add_parser("check", help="check a page written by dvc plots show/diff")
    c.add_argument("page", type=Path)
    c.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    if args.command == "build":
        args.out.write_text(build(args.scripts), encoding="utf-8")
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
        return 0
    selectors = ["full", *yaml.safe_load(args.params.read_text())["selectors"]]
    found = problems(args.page.read_text(encoding="utf-8"), selectors)
    for line in found:
        print(f"error: {args.page}: {line}", file=sys.stderr)
    if not found:
        print(f"{args.page}: offline, names all {len(selectors)} selectors")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
