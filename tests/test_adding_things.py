"""Adding a dataset, a paper table or a corruption: each list of names is derived from one place,
and these tests fail, naming the missing step, when a name has no implementation behind it (the
README's "Adding things" table). Selectors and models have theirs next to their registries
(tests/test_selectors_params.py, tests/test_models_zoo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coreset.data import datasets
from coreset.experiments import tables as tables_cmd
from coreset.experiments.report import cli as report_cli
from coreset.experiments.report.experiments import flatten
from coreset.experiments.report.specs import SPECS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", [n for n in datasets.NAMES if n != "digits"])
def test_every_dataset_name_has_a_loader(name, tmp_path):
    """An empty root gives the loader's own 'where to put the files' error, never 'unknown'."""
    with pytest.raises(Exception) as err:
        datasets.load(name, tmp_path)
    assert "is unknown" not in str(err.value), (
        f"datasets.NAMES lists {name!r} but datasets.load does not know it")
    assert str(tmp_path) in str(err.value) or "data.root" in str(err.value), str(err.value)


@pytest.mark.parametrize("table", tables_cmd.TABLES)
def test_every_table_plans_its_experiments_and_names_known_reports(table):
    base = flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))
    plan = tables_cmd.plan(table, base)
    assert plan.cells, f"table {table!r} plans no experiment: give it cells in tables._cells"
    for report in tables_cmd.REPORTS[table]:
        assert report in report_cli.NAMES, f"table {table!r} writes an unknown report {report!r}"


def test_every_spec_is_a_table_or_a_companion():
    companions = {c for cs in report_cli.COMPANIONS.values() for c in cs}
    assert set(SPECS) <= set(tables_cmd.TABLES) | companions
    assert companions <= set(report_cli.NAMES)
