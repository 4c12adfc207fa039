"""params.yaml validation: a bad value -> one line naming the key, the value and what is allowed,
a non-zero exit, and no output written."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coreset.config import ConfigError, load, parse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_value(key: str, value):
    tree = copy.deepcopy(DEFAULT)
    node = tree
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return tree


def test_default_params_are_valid():
    p = load(ROOT / "params.yaml")
    assert p.ratio == DEFAULT["ratio"]
    assert set(p.selectors) <= set(p.recipes)
    assert p.recipes["moderate"].params == {"center": "median"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ratio", 0, "ratio = 0 is not allowed: a number in (0.0, 1.0]"),
        ("ratio", 1.5, "ratio = 1.5"),
        ("ratio", "high", "ratio = 'high'"),
        ("selectors", ["moderate", "nope"], "selectors = 'nope'"),
        ("data.dataset", "imagenet22k", "data.dataset = 'imagenet22k' is not allowed: one of"),
        ("train.epochs", 0, "train.epochs = 0 is not allowed: an integer >= 1"),
        ("train.epochs", True, "train.epochs = True"),
        ("corrupt.label_noise.rate", -0.1, "corrupt.label_noise.rate = -0.1"),
        ("corrupt.label_noise.mode", "asym", "corrupt.label_noise.mode = 'asym'"),
        ("corrupt.images.types", ["blur"], "corrupt.images.types = ['blur']"),
        ("recipes.el2n.window", "middle", "recipes.el2n.window = 'middle'"),
        ("recipes.el2n.method", "el3n", "recipes.el2n.method = 'el3n'"),
        ("train.schedule", "linear", "train.schedule = 'linear'"),
        ("seeds", [], "seeds = []"),
        ("device", "tpu", "device = 'tpu'"),
    ],
)
def test_bad_values_name_key_value_and_allowed(key, value, message):
    with pytest.raises(ConfigError) as err:
        parse(with_value(key, value))
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_unknown_selector_param_is_named():
    tree = with_value("recipes.moderate.params", {"centre": "mean"})
    with pytest.raises(ConfigError, match=r"recipes.moderate.params.centre .*allowed: center"):
        parse(tree)


def test_missing_key_is_named():
    tree = copy.deepcopy(DEFAULT)
    del tree["train"]["lr"]
    with pytest.raises(ConfigError, match=r"train.lr is missing"):
        parse(tree)


def test_stage_exits_with_one_line_and_writes_nothing(tmp_path):
    tree = with_value("pretrain.epochs", -3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "coreset.stages.download"], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: params.yaml: pretrain.epochs = -3 is not allowed: an integer >= 1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
