"""Declared selector parameters, the shared greedy machinery and its prefix consistency."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from coreset.scores import registry
from coreset.scores.greedy import greedy_length
from coreset.scores.params import ParamError
from coreset.scores.selection import budget, class_budgets, select
from helpers_selectors import make_ctx


def test_every_parameter_of_every_selector_is_declared_and_its_default_allowed():
    specs = registry.load_all()
    assert len(specs) >= 23
    for name, spec in specs.items():
        assert set(spec.rules) == set(spec.defaults), name
        assert registry.validate_params(name, {}) == spec.defaults


def test_register_refuses_an_undeclared_parameter():
    def fn(ctx, *, rng, balance, alpha: float = 1.0):
        return np.zeros(ctx.n)

    with pytest.raises(ValueError, match="declared params"):
        registry.register("_undeclared", family="test", paper="-")(fn)
    assert "_undeclared" not in registry.REGISTRY


@pytest.mark.parametrize(("method", "params", "message"), [
    ("cal", {"neighbors": -1}, "neighbors = -1 is not allowed: an integer >= 1"),
    ("moderate", {"center": "foo"}, "center = 'foo' is not allowed: one of median, mean"),
    ("herding", {"max_ratio": 7}, "max_ratio = 7 is not allowed: a number in (0, 1]"),
    ("herding", {"max_ratio": float("nan")}, "max_ratio = nan is not allowed"),
    ("graph_cut", {"lam": float("inf")}, "lam = inf is not allowed: a finite number > 0"),
    ("cal", {"neighbors": True}, "neighbors = True is not allowed"),
    ("cal", {"neighbors": 10.0}, "neighbors = 10.0 is not allowed"),
    ("self_sup_prototypes", {"normalize": 1}, "normalize = 1 is not allowed: true or false"),
    ("facility_location", {"epsilon": 1.0}, "epsilon = 1.0 is not allowed: a number in (0, 1)"),
    ("deepfool", {"candidates": 1}, "candidates = 1 is not allowed: an integer >= 0, not 1"),
    ("glister", {"eta": "0.1"}, "eta = '0.1' is not allowed: a finite number >= 0"),
    ("el2n", {"windwo": "top"}, "windwo = 'top' is not allowed: not a parameter of 'el2n'"),
    ("random", {"seed": 1}, "seed = 1 is not allowed: not a parameter of 'random'; allowed: none"),
    ("log_determinant", {"metric": "euclidean"}, "metric = 'euclidean' is not allowed"),
])
def test_bad_values_raise_one_line_naming_param_value_and_rule(method, params, message):
    with pytest.raises(ParamError) as err:
        registry.validate_params(method, params)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert err.value.param == next(iter(params))


def test_a_registered_selector_checks_its_params_before_any_work():
    ctx = make_ctx(np.zeros(5, dtype=np.int64), 2)
    with pytest.raises(ParamError, match="neighbors = -1"):
        registry.get("cal").fn(ctx, rng=np.random.default_rng(0), balance=True, neighbors=-1)


def test_importing_the_registry_and_every_selector_does_not_import_torch():
    code = ("import sys; from coreset.scores import registry; registry.load_all(); "
            "from coreset.scores import selection; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- greedy orders


def test_one_greedy_length_serves_every_budget_up_to_max_ratio():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(1, 500))
        r = round(float(rng.uniform(0.001, 1.0)), int(rng.integers(1, 5)))
        if r <= 0:
            continue
        length = greedy_length(n, r)
        assert budget(n, r) <= length <= n
        assert length == min(n, math.ceil(round(r * n, 9)))  # ceil of the written decimal
    assert greedy_length(10, 0.3) == 3 and greedy_length(50, 0.2) == 10


def test_class_budgets_never_exceed_the_per_class_greedy_length():
    rng = np.random.default_rng(1)
    for _ in range(500):
        counts = rng.integers(1, 60, size=int(rng.integers(1, 8)))
        r = round(float(rng.uniform(0.01, 1.0)), 2)
        assert np.all(class_budgets(counts, r) <= [greedy_length(int(c), r) for c in counts])


GREEDY = {  # name -> extra params (deterministic optimizers; stochastic has its own test)
    "herding": {}, "kcenter": {}, "contextual_diversity": {},
    "facility_location": {"optimizer": "naive"}, "graph_cut": {}, "log_determinant": {},
    "craig": {}, "gradmatch": {}, "glister": {},
    "facility_location ": {"optimizer": "stochastic", "epsilon": 0.5},
}


def _ctx(n: int = 150, c: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % c)
    logits = rng.standard_normal((n, c))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return make_ctx(labels, c, features=rng.standard_normal((n, 6)), probs=probs)


@pytest.mark.parametrize("name", sorted(GREEDY))
@pytest.mark.parametrize("balance", [True, False])
def test_greedy_orders_are_prefix_consistent(name, balance):
    """The order computed with max_ratio a is a prefix of the order with max_ratio b > a, so
    ``select`` at any ratio <= a gets the same subset from either (the README's claim)."""
    ctx = _ctx()
    fn = registry.get(name.strip()).fn
    params = GREEDY[name]
    scores = {a: fn(ctx, rng=np.random.default_rng(4), balance=balance, max_ratio=a, **params)
              for a in (0.1, 0.35, 1.0)}
    groups = [np.flatnonzero(ctx.labels == c) for c in range(3)] if balance else [np.arange(150)]
    for a, b in ((0.1, 0.35), (0.35, 1.0), (0.1, 1.0)):
        for g in groups:
            short = g[np.argsort(-scores[a][g], kind="stable")][: greedy_length(len(g), a)]
            long = g[np.argsort(-scores[b][g], kind="stable")][: len(short)]
            np.testing.assert_array_equal(short, long)
    for ratio in (0.05, 0.1):
        picks = [select(scores[a], ctx.labels, ratio, "top", balance, np.random.default_rng(0))
                 for a in (0.1, 1.0)]
        np.testing.assert_array_equal(*picks)
