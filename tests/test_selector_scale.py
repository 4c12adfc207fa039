"""Global selector runs that would not fit this machine at ImageNet scale are refused before any
work, in one line naming the largest N accepted; balanced runs of the same selectors are not."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from coreset.scores import registry, scale
from helpers_selectors import make_ctx

IMAGENET = dict(n=1_281_167, num_classes=1000, dim=512)
# every selector whose global variant is superlinear in N, with the parameters it is run with
REFUSED_GLOBALLY = {"herding": {"max_ratio": 0.1}, "kcenter": {"max_ratio": 0.1},
                    "contextual_diversity": {"max_ratio": 0.1}, "gradmatch": {"max_ratio": 0.1},
                    "glister": {"max_ratio": 0.1}, "facility_location": {"max_ratio": 0.1},
                    "graph_cut": {"max_ratio": 0.1}, "log_determinant": {"max_ratio": 0.1},
                    "cal": {}, "d2": {"max_ratio": 0.1}}


def shape_only(n: int, num_classes: int, dim: int) -> SimpleNamespace:
    """A context with sizes only: a selector that started working on it would fail."""
    return SimpleNamespace(n=n, num_classes=num_classes, features=SimpleNamespace(shape=(n, dim)))


@pytest.mark.parametrize("name", sorted(REFUSED_GLOBALLY))
def test_global_runs_at_imagenet_scale_are_refused_in_one_line(name):
    spec = registry.get(name)
    with pytest.raises(scale.ScaleError) as err:
        spec.fn(shape_only(**IMAGENET), rng=np.random.default_rng(0), balance=False,
                **REFUSED_GLOBALLY[name])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{name} (balance: false) at N = 1281167")
    largest = int(msg.split("the largest N it accepts here is ")[1].split(";")[0])
    params = {**spec.defaults, **REFUSED_GLOBALLY[name]}
    fits = [(lambda o, b: o <= scale.MAX_OPS and b <= scale.MAX_BYTES)(
        *spec.cost.estimate(m, 1000, 512, False, params)) for m in (largest, largest + 1)]
    assert fits == [True, False]  # the limit is the largest accepted N, exactly
    assert 1 <= largest < IMAGENET["n"]


def test_the_exact_influence_hessian_at_imagenet_width_is_refused():
    with pytest.raises(scale.ScaleError, match=r"GiB array.*no N fits with C = 1000 and D = 512"):
        registry.get("influence").fn(shape_only(**IMAGENET), rng=np.random.default_rng(0),
                                     balance=True, hessian="exact")


@pytest.mark.parametrize("name", sorted(REFUSED_GLOBALLY))
def test_balanced_runs_are_not_limited(name):
    spec = registry.get(name)
    scale.check(name, spec.cost, IMAGENET["n"], 1000, 512, True,
                {**spec.defaults, **REFUSED_GLOBALLY[name]})


def test_a_run_at_the_largest_accepted_n_goes_ahead(monkeypatch):
    """With a tiny operation budget, kcenter refuses N = 40 globally and names the largest N
    accepted; a context of exactly that size is scored, one sample more is refused."""
    monkeypatch.setattr(scale, "MAX_OPS", 2.0 * 10 * 30 * 4)  # k N D with k = N / 4 (ratio .25)
    rng = np.random.default_rng(0)

    def ctx(n: int):
        return make_ctx(np.arange(n) % 2, 2, features=rng.standard_normal((n, 4)))

    kcenter = registry.get("kcenter").fn
    with pytest.raises(scale.ScaleError) as err:
        kcenter(ctx(40), rng=rng, balance=False, max_ratio=0.25)
    largest = int(str(err.value).split("accepts here is ")[1].split(";")[0])
    assert np.isfinite(kcenter(ctx(largest), rng=rng, balance=False, max_ratio=0.25)).sum() > 0
    with pytest.raises(scale.ScaleError):
        kcenter(ctx(largest + 1), rng=rng, balance=False, max_ratio=0.25)
    kcenter(ctx(40), rng=rng, balance=True, max_ratio=0.25)  # per class: not limited
