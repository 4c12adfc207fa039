"""`python -m coreset.experiments.tables TABLE --tiny` reports to plots/smoke/, labelled, never over
plots/report/."""

from __future__ import annotations

from pathlib import Path

import yaml

from coreset.experiments import tables as paper_tables
from coreset.experiments.report import experiments

ROOT = Path(__file__).resolve().parents[1]
BASE = experiments.flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))


def test_tiny_report_goes_to_the_smoke_folder_and_a_full_one_does_not():
    tiny = paper_tables.report_args(paper_tables.plan("boosted", BASE, tiny=True))
    assert tiny[-2:] == ["--out", "plots/smoke"]
    assert "--out" not in paper_tables.report_args(paper_tables.plan("boosted", BASE))


def test_smoke_report_writes_its_label_next_to_the_tables(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(paper_tables.report_cli, "main", lambda argv: calls.append(argv) or 0)
    monkeypatch.setattr(paper_tables, "write_manifest", lambda p, root: 0)  # needs experiments
    assert paper_tables.write_report(paper_tables.plan("boosted", BASE, tiny=True), tmp_path) == 0
    args = calls[0]
    assert args[args.index("--out") + 1] == "plots/smoke" and args[-1] == str(tmp_path)
    assert (tmp_path / "plots/smoke/SMOKE.md").read_text().startswith("# SMOKE RUN: not results")
    assert not (tmp_path / "plots/report").exists()
