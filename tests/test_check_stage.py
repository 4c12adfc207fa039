"""The check stage (first in dvc.yaml, always_changed): validates params.yaml, prunes evaluate's
folders to the current grid, writes the same marker bytes every time, and on a refusal removes
and writes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from coreset.stages import _cli, check
from test_bad_params import edited

GRID = {"selectors": ["random", "moderate"], "seeds": [0, 1]}
FILES = ["data/selected/random.npz", "data/selected/moderate.npz", "data/selected/el2n.npz",
         "metrics/train/random-0.json", "metrics/train/random-1.json",
         "metrics/train/random-2.json", "metrics/train/el2n-0.json",
         "metrics/train/full-0.json", "metrics/train/full-1.json", "metrics/train/full-2.json",
         "metrics/train/moderate-0.json", "metrics/train/moderate-1.json",
         "plots/curves/train/el2n-1.csv", "plots/curves/train/random-1.csv",
         "plots/curves/train/full-2.csv", "data/scores/el2n.npz", "metrics/train/.gitignore"]


def run_check(work: Path, monkeypatch, tree: dict) -> int:
    (work / "params.yaml").write_text(yaml.safe_dump(tree))
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["check"])
    try:
        _cli.run(check.main, check.outputs)
    except SystemExit as stop:
        return int(stop.code)
    return 0


def existing(work: Path) -> set[str]:
    return {str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()} - {"params.yaml"}


def test_check_prunes_evaluates_folders_to_the_current_grid(tmp_path, monkeypatch):
    for f in FILES:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    assert run_check(tmp_path, monkeypatch, edited(GRID)) == 0
    expected = {"data/selected/random.npz", "data/selected/moderate.npz",
                "metrics/train/random-0.json", "metrics/train/random-1.json",
                "metrics/train/full-0.json", "metrics/train/full-1.json",
                "metrics/train/moderate-0.json", "metrics/train/moderate-1.json",
                "plots/curves/train/random-1.csv",
                # evaluate does not read data/scores; DVC's own .gitignore files stay
                "data/scores/el2n.npz", "metrics/train/.gitignore", "data/params.ok"}
    assert existing(tmp_path) == expected
    marker = (tmp_path / "data/params.ok").read_bytes()
    assert run_check(tmp_path, monkeypatch, edited({**GRID, "ratio": 0.3})) == 0
    assert (tmp_path / "data/params.ok").read_bytes() == marker == b"params.yaml: ok\n"


@pytest.mark.parametrize("edits", [{"ratoi": 0.3}, {"selectors": ["random"], "seeds": [0, 0]},
                                   {"recipes.cal.window": "mid"}])
def test_a_refused_file_removes_and_writes_nothing(tmp_path, monkeypatch, capsys, edits):
    for f in [*FILES, "data/params.ok"]:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    before = existing(tmp_path)
    assert run_check(tmp_path, monkeypatch, edited({**GRID, **edits})) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert existing(tmp_path) == before


def test_check_is_the_first_stage_and_always_runs():
    root = Path(__file__).resolve().parents[1]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert next(iter(stages)) == "check" and stages["check"]["always_changed"] is True
    assert stages["check"]["outs"] == [{"data/params.ok": {"persist": True}}]
    assert "data/params.ok" in stages["download"]["deps"]
    assert "/params.ok" in (root / "data/.gitignore").read_text().split()
