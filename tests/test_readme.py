"""The README's first screen tells the truth: its default table is the one `dvc repro` prints for
the committed metrics (metrics/summary.json, plots/accuracy.csv, params.yaml)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def readme_rows() -> dict[str, list[str]]:
    """selector -> its cells, from the README's default table (the first with a `kept` column)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("| selector | method | window | kept |"):]
    rows = {}
    for line in block.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_the_readme_default_table_is_the_committed_metrics():
    summary = json.loads((ROOT / "metrics/summary.json").read_text())
    with open(ROOT / "plots/accuracy.csv", newline="") as f:
        plot = {r["selector"]: r for r in csv.DictReader(f)}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    rows = readme_rows()
    assert list(rows) == ["full", *params["selectors"]]
    for name, cells in rows.items():
        acc, std = summary["accuracy"][name], summary["std"][name]
        expected = [f"{int(plot[name]['kept'])}", f"{100 * acc:.2f} ± {100 * std:.2f}",
                    f"{100 * float(plot[name]['kept_perturbed']):.1f} %"]
        assert cells[3:] == expected, f"README row {name!r}: {cells[3:]}, committed {expected}"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    header = re.search(r"Dataset (\w+), ratio ([\d.]+), (\d+) seeds", text)
    assert header is not None
    assert header.groups() == (params["data"]["dataset"], f"{summary['ratio']:g}",
                               str(len(params["seeds"])))
