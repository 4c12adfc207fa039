"""``python -m coreset.experiments.report [TABLE ...]``: the paper's tables and figures from the DVC
experiments of the repository (``dvc exp show``), written to plots/report/.

Only experiments whose params equal the context (params.yaml, updated by ``--set KEY=VALUE``)
outside a table's own axes are reported, so runs with other epochs, datasets or models never
mix into one table; the report says how many it left out and why.

    python -m coreset.experiments.report                         # every table that has experiments
    python -m coreset.experiments.report selectors_x_ratios overlap --set train.epochs=3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from coreset.experiments.report import experiments
from coreset.experiments.report.build import NoData, write
from coreset.experiments.report.specs import SPECS

# every report; a paper table (`coreset table NAME`) is a report that is not a companion, and
# writes its companions with it: the tables' list is derived from this one, never kept apart
NAMES = (*SPECS, "overlap", "windows")
COMPANIONS = {"ablation": ("windows",)}  # table -> the other reports its experiments feed
OUT = Path("plots/report")  # not a DVC output: the report is written outside the pipeline


class UsageError(ValueError):
    """A bad command-line value; printed as one line."""


def parse_sets(items: Sequence[str], params: dict[str, Any]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> {key: value} (values parsed as YAML); keys must be params."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        if key not in params:
            raise UsageError(f"--set {key}: not a key of params.yaml (use dotted leaf keys, "
                             "e.g. train.epochs=3)")
        value = yaml.safe_load(text)
        out[key] = experiments.flatten({"v": value})["v"] if value != {} else ()
    return out


def context(root: Path, sets: Sequence[str]) -> dict[str, Any]:
    """The flattened params.yaml of ``root``, updated with ``--set`` overrides."""
    params = experiments.flatten(yaml.safe_load((root / "params.yaml").read_text()))
    return {**params, **parse_sets(sets, params)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coreset.experiments.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tables", nargs="*", metavar="TABLE",
                   help=f"what to write (default: all): {', '.join(NAMES)}")
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="report experiments run with this param value (as `dvc exp run -S`)")
    p.add_argument("--selectors", type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated recipes: rows of the tables without fixed rows")
    p.add_argument("--classes", type=lambda s: [int(x) for x in s.split(",")],
                   default=[0, 1, 2], help="classes of the windows figure (default 0,1,2)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--root", type=Path, default=Path("."), help="repository root")
    p.add_argument("--all-commits", action="store_true",
                   help="also read experiments based on earlier commits (default: HEAD's)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Write the requested tables; 0 on success, 1 if a named table had no experiments."""
    args = parser().parse_args(argv)
    root = args.root
    unknown = [t for t in args.tables if t not in NAMES]
    if unknown:
        print(f"error: unknown table {unknown[0]!r}; known: {', '.join(NAMES)}", file=sys.stderr)
        return 2
    try:
        ctx = context(root, args.set)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        exps = experiments.load(root, args.all_commits)
    except RuntimeError as err:  # not a DVC repository, or DVC failed
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out if args.out.is_absolute() else root / args.out
    options = {"selectors": args.selectors, "classes": args.classes}
    status, written = 0, 0
    for name in args.tables or NAMES:
        try:
            paths = write(name, exps, ctx, root, out, options)
        except NoData as err:
            if args.tables:  # asked for by name: its absence is an error
                print(f"error: {err}", file=sys.stderr)
                status = 1
            else:
                print(f"skipped {err}")
            continue
        print(f"{name}: " + " ".join(str(p) for p in paths))
        written += 1
    if not written and not args.tables:
        print("error: nothing to report: no completed experiment matches params.yaml (run "
              "`dvc repro` or `python -m coreset.experiments.tables TABLE` first)", file=sys.stderr)
        return 1
    return status
