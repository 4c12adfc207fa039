"""Rules across keys, in the one validation pass that every stage and `coreset check` run: each
is refused with exit 2 and one line naming the key that must change, before any work. And the one
rule vocabulary (coreset.rules) behind both params.yaml and the selector parameters."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from coreset import config, rules
from coreset.scores import params as selector_params
from coreset.stages import _cli
from test_bad_params import DEFAULT, assert_one_line_naming, edited

SELECT = {"selectors": ["random"]}
# (edits, the key the line must name, a word the line must contain)
CASES = [
    ({**SELECT, "selectors": ["herding"], "ratio": 0.5,
      "recipes.herding.params.max_ratio": 0.3}, "recipes.herding.params.max_ratio", "0.5"),
    ({"selectors": ["kcenter"], "ratio": 0.4, "recipes.kcenter.params.max_ratio": 0.2},
     "recipes.kcenter.params.max_ratio", "greedy"),
    ({"selectors": ["dyn_unc"], "pretrain.epochs": 5}, "recipes.dyn_unc.params.window",
     "pretrain.epochs = 5"),
    ({"selectors": ["tdds"], "pretrain.epochs": 4}, "recipes.tdds.params.trajectory",
     "pretrain.epochs = 4"),
    ({"recipes.tdds.params.window": 12}, "recipes.tdds.params.window", "trajectory"),
    ({"selectors": ["ccs"], "ratio": 0.95}, "recipes.ccs.params.hard_cut", "1 - ratio"),
    ({"selectors": ["d2"], "ratio": 0.8, "recipes.d2.params.hard_cut": 0.3},
     "recipes.d2.params.hard_cut", "1 - ratio"),
    ({"train.schedule": "multistep", "train.milestones": [10, 40]}, "train.milestones",
     "train.epochs = 30"),
    ({"pretrain.schedule": "multistep"}, "pretrain.milestones", "never"),
    ({"attacker.schedule": "step", "attacker.step_size": 30}, "attacker.step_size", "never"),
    ({"data.test_fraction": 0.95}, "data.test_fraction", "0.9"),
    ({"data.test_fraction": 0.999}, "data.test_fraction", "0.9"),
    ({"train.epochs": 10**6}, "train.epochs", "1000"),
    ({"pretrain.epochs": 10**9}, "pretrain.epochs", "1000"),
    ({"train.budget": "steps", "train.steps": 10**12}, "train.steps", "10000000"),
    ({"train.batch_size": 2**40}, "train.batch_size", "65536"),
    ({"embed.batch_size": 10**8}, "embed.batch_size", "65536"),
    ({"corrupt.adversarial.steps": 10**7}, "corrupt.adversarial.steps", "1000"),
    ({"data.image_size": 10**5}, "data.image_size", "1024"),
    ({"cpu_threads": 10**6}, "cpu_threads", "1024"),
    ({"seeds": list(range(101))}, "seeds", "at most 100"),
    ({"train.milestones": [1, 10**6]}, "train.milestones", "1..1000"),
]


@pytest.mark.parametrize(("edits", "key", "word"), CASES, ids=[c[1] for c in CASES])
def test_rules_across_keys_stop_the_stage(edits, key, word, tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited(edits)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["download"])
    with pytest.raises(SystemExit) as stop:
        _cli.run(lambda p, argv: pytest.fail("ran past the check"), _cli.no_args("data/raw"))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert_one_line_naming(err, key)
    assert word in err
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_the_defaults_pass_every_rule_across_keys():
    config.parse(DEFAULT)
    config.check_sizes(config.parse(DEFAULT), 1437, "data/raw/train_labels.npy")


def test_more_clusters_than_samples_is_refused_once_the_counts_are_known():
    p = config.parse(edited({"selectors": ["self_sup_prototypes"],
                             "recipes.self_sup_prototypes.params.n_clusters": 500}))
    config.check_sizes(p, 500, "x")
    with pytest.raises(config.ConfigError, match=r"^params.yaml: recipes.self_sup_prototypes"
                       r".params.n_clusters = 500 is not allowed: at most the 499 training"):
        config.check_sizes(p, 499, "data/raw/train_labels.npy")


def test_dynamics_that_would_not_fit_are_refused():
    """(10 + 1) seeds x 1000 epochs x 1.28 M ImageNet samples x 25 bytes is 328.1 GiB, + 4.8
    GiB of logits: refused under the default host budget (tests/test_dynamics_memory.py)."""
    seeds = list(range(10))
    p = config.parse(edited({"pretrain.epochs": 1000, "pretrain.seeds": seeds}))
    with pytest.raises(config.ConfigError) as err:
        config.check_sizes(p, 1_281_167, "data/raw/train_labels.npy", 1000)
    assert str(err.value).startswith("params.yaml: data.host_memory_gb = 4.0 is not allowed: at "
                                     "least 332.90 ")


def test_one_vocabulary_for_params_and_selector_parameters():
    assert selector_params.Float is rules.Float and selector_params.Int is rules.Int
    assert selector_params.ParamError is rules.RuleError
    assert config.Int is rules.Int and config.Float is rules.Float
    assert not hasattr(config, "Num")
    # one keyword naming, one message per rule whichever side uses it
    assert rules.Float(0.0, 1.0, open_low=True).allowed() == "a number in (0, 1]"
    assert rules.Int(1, 5).allowed() == "an integer in 1..5"
    with pytest.raises(rules.RuleError, match=r"^lr = '1e-3' is not allowed: .*write it with a"):
        rules.Float(0.0, 1.0)("lr", "1e-3")


@pytest.mark.parametrize("value", [True, np.nan, np.inf, "1", None, [1]])
def test_numbers_refuse_bools_text_and_non_finite_values(value):
    for rule in (rules.Float(), rules.Int(), rules.Float(0.0, 1.0)):
        assert not rule.ok(value)
