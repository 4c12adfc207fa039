"""params.yaml validation: a bad value -> one line naming the key, the value and what is allowed,
a non-zero exit, and no output written."""

import copy
import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml

from coreset.config import ConfigError, check_device, check_ratio, load, parse

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


def leaves(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "recipes":
            yield from leaves(v, key + ".")
        else:
            yield key, v


def test_config_mirrors_params_yaml_one_to_one():
    """Every key of params.yaml is the same attribute path on the config object."""
    p = load(ROOT / "params.yaml")
    for key, value in leaves(DEFAULT):
        node = p
        for part in key.split("."):
            node = getattr(node, part)
        if key == "recipes":
            assert set(node) == set(value)
        else:
            assert node == (tuple(value) if isinstance(value, list) else value), key
    assert p.corrupt.adversarial.rate == DEFAULT["corrupt"]["adversarial"]["rate"]
    assert p.pretrain.seeds == tuple(DEFAULT["pretrain"]["seeds"])


def _sections(cls: type):
    """``cls`` and every dataclass reachable from its fields (the sections of params.yaml)."""
    yield cls
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _sections(hint)


def test_every_field_of_the_params_types_has_exactly_one_rule():
    """A field added to coreset/params.py without its rule in config.RULES (or a rule left for a
    removed field) fails here, naming the step to take."""
    from coreset import config, params

    sections = set(_sections(params.Params))
    assert all(isinstance(c, type) and c.__module__ == "coreset.params" for c in config.RULES)
    assert set(config.RULES) - sections == set(), "RULES has a section that params.Params lacks"
    for cls in sections:
        names = {f.name for f in dataclasses.fields(cls)}
        have = set(config.rules(cls))
        assert not names - have, (f"add the rule of {cls.__name__}.{sorted(names - have)} to "
                                  "config.RULES")
        assert not have - names, f"config.RULES[{cls.__name__}] has no field {sorted(have - names)}"
        own = set(config.RULES.get(cls, {}))
        inherited = {n for b in cls.__mro__[1:] for n in config.RULES.get(b, {})}
        assert not own & inherited, f"{cls.__name__}: a rule given twice {sorted(own & inherited)}"


def test_allowlists_come_from_the_implementing_modules():
    from coreset.data import adversarial, corruptions, label_noise
    from coreset.data import names as data_names
    from coreset.data.datasets import NAMES as DATASETS
    from coreset.models import MODELS

    assert all(callable(corruptions.CORRUPTIONS[n]) for n in data_names.CORRUPTIONS)
    assert adversarial.METHODS is data_names.ATTACKS
    for key, allowed in [("train.model", ("auto", *MODELS)), ("data.dataset", DATASETS),
                         ("corrupt.label_noise.mode", label_noise.MODES),
                         ("corrupt.adversarial.method", data_names.ATTACKS)]:
        with pytest.raises(ConfigError) as err:
            parse(with_value(key, "nope"))
        assert str(err.value).endswith(f"one of {', '.join(allowed)}")


def test_validation_needs_no_torch():
    code = ("import sys; from coreset.config import load, check_runtime; "
            "check_runtime(load('params.yaml')); assert 'torch' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def test_missing_device_is_one_line(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda:1")
    with pytest.raises(ConfigError, match=r"^params.yaml: device = 'cuda:2' is not allowed: "
                       r"this machine has 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        check_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"no CUDA device; use auto, cpu$"):
        check_device("cuda")


@pytest.mark.parametrize(("counts", "ratio", "refused_class"), [
    ([10, 10], 0.05, 1),     # a budget of 1 of 20: the tie goes to class 0, class 1 keeps none
    ([10, 10], 0.1, None),
    ([100, 3], 0.2, None),   # 0.6 of class 1 gets the one extra sample
    ([100, 3], 0.1, 1),      # 0.3 of class 1 and no sample to spare: it keeps none
    ([5, 5, 5], 0.0001, 0),
])
def test_ratio_must_keep_a_sample_of_every_class(counts, ratio, refused_class):
    if refused_class is None:
        check_ratio(ratio, np.array(counts), "labels.npy")
        return
    with pytest.raises(ConfigError, match=rf"^params.yaml: ratio = {ratio} is not allowed: .*"
                       rf"class {refused_class} has {counts[refused_class]} training samples"):
        check_ratio(ratio, np.array(counts), "labels.npy")


def test_steps_budget_needs_steps_in_one_line():
    tree = with_value("train.budget", "steps")
    with pytest.raises(ConfigError) as err:
        parse(tree)
    assert str(err.value) == ("params.yaml: train.steps = 0 is not allowed: an integer >= 1 when "
                              "train.budget is steps")
    tree["train"]["steps"] = 500
    assert parse(tree).train.steps == 500


def test_protocol_keys_exist_only_under_train():
    p = load(ROOT / "params.yaml")
    assert (p.train.budget, p.train.steps, p.train.dynamic) == ("epochs", 0, "none")
    assert (p.train.dynamic_ratio, p.train.infobatch_prune, p.train.infobatch_anneal) == \
        (0.1, 0.5, 0.125)
    assert not hasattr(p.pretrain, "budget") and not hasattr(p.attacker, "dynamic")
    assert p.train.protocol() == {"budget": "epochs", "epochs": 30, "steps": 0,
                                  "batch_size": 64, "report": "final", "dynamic": "none"}
    from coreset.stages.evaluate import protocol

    assert protocol(p) == "Protocol: 30 epochs over the subset, batch 64, final-epoch accuracy."


def test_small_inputs_are_refused_in_one_line():
    from coreset.config import check_model_sizes
    p = parse(with_value("train.model", "lenet"))
    check_model_sizes(p, 16, "meta.json")  # LeNet's smallest input passes
    with pytest.raises(ConfigError) as err:
        check_model_sizes(p, 8, "data/raw/meta.json")
    assert str(err.value) == ("params.yaml: train.model = 'lenet' is not allowed: a model for "
                              "8 px images (data/raw/meta.json): lenet needs at least 16 px")
    check_model_sizes(parse(with_value("train.model", "alexnet")), 8, "meta.json")
