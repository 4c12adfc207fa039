"""The selector registry: a name -> (scoring function, family, default window/balance, paper).

A selector is a function ``fn(ctx, *, rng, balance, **params) -> np.ndarray`` that returns one
float score per training sample. Convention: a HIGHER score is taken FIRST by the window ``top``.
Selectors that produce a greedy order (herding, k-center, submodular, ...) return
``order_to_score(order, n)``, so that the first pick gets the highest score; samples the greedy
never reached get ``-inf``: -inf is reserved for "not ranked", every other score is finite.
Scores never depend on the selection ratio: ``select`` applies ratio, window and balance later, so
``dvc exp run -S ratio=...`` never reruns a score stage (greedy orders are prefix-consistent, see
``greedy.py``).

Adding a selector is one function and one ``@register(...)`` line that declares its parameters
(``params={"name": rule}`` with the rules of ``params.py``), in a new or an existing module of
``coreset/scores/``, plus a test: :func:`load_all` imports every module of the package that
calls ``@register(``, so nothing else lists selector modules.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coreset.registry import Registry
from coreset.scores import scale
from coreset.scores.params import ParamError, Rule, check
from coreset.scores.selection import WINDOWS, order_to_score

__all__ = ["REGISTRY", "WINDOWS", "ParamError", "SelectorSpec", "get", "load_all",
           "order_to_score", "register", "validate_params"]

ScoreFn = Callable[..., np.ndarray]
WeightFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class SelectorSpec:
    """Everything the pipeline needs to know about one selector."""

    name: str
    fn: ScoreFn
    family: str
    window: str
    balance: bool
    paper: str
    weigher: WeightFn | None = None  # (ctx, selected, **params) -> weights: craig, gradmatch
    # whether the score needs forward/backward passes of the model: a bool, or a function of the
    # recipe's params for selectors where only some settings do (grand with layers="all")
    needs_model: bool | Callable[[dict], bool] = False
    defaults: dict[str, object] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)  # every parameter's declared rule
    # the dominant time and memory of a run, when it can exceed this machine (scale.py): such a
    # run is refused before any work, naming the largest N accepted
    cost: scale.Cost | None = None

    def uses_model(self, params: dict) -> bool:
        return self.needs_model(params) if callable(self.needs_model) else self.needs_model

    def weigh(self, ctx: object, selected: np.ndarray,
              params: dict) -> tuple[np.ndarray, np.ndarray]:
        """(kept indices, their float32 weights) of a selection: unit weights for unweighted
        selectors; for Craig / GradMatch the weigher's, and samples whose weight is 0 are dropped
        (GradMatch's non-negative least squares zeroes some): a kept sample always has a positive
        weight, so "kept" never counts a sample that training ignores."""
        selected = np.asarray(selected, dtype=np.int64)
        if self.weigher is None:
            return selected, np.ones(len(selected), dtype=np.float32)
        weights = np.asarray(self.weigher(ctx, selected, **params), dtype=np.float32)
        keep = weights > 0
        return selected[keep], weights[keep]


def _discover() -> None:
    """Import every module of ``coreset.scores`` whose source registers a selector."""
    for path in sorted(Path(__file__).parent.glob("[!_]*.py")):
        if "@register(" in path.read_text(encoding="utf-8") and path.stem != "registry":
            importlib.import_module(f"coreset.scores.{path.stem}")


REGISTRY: Registry[SelectorSpec] = Registry("selector method", discover=_discover)


def _keyword_defaults(fn: ScoreFn) -> dict[str, object]:
    sig = inspect.signature(fn)
    out = {}
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name not in ("rng", "balance"):
            out[p.name] = None if p.default is p.empty else p.default
    return out


def register(
    name: str,
    *,
    family: str,
    paper: str,
    window: str = "top",
    balance: bool = True,
    weigher: WeightFn | None = None,
    needs_model: bool | Callable[[dict], bool] = False,
    params: dict[str, Rule] | None = None,
    cost: scale.Cost | None = None,
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register ``fn`` under ``name``. Its keyword-only parameters are its params, and
    ``params`` declares the rule of each (all of them, no more): a missing or extra declaration
    fails at import. The registered function checks its params against the rules on every call,
    so a bad value fails before any work, with one :class:`ParamError` line; and, when ``cost``
    is declared, that the run fits this machine (:func:`scale.check`: one ScaleError line)."""
    if window not in WINDOWS:
        raise ValueError(f"register({name!r}): window {window!r} not in {WINDOWS}")
    rules = dict(params or {})

    def deco(fn: ScoreFn) -> ScoreFn:
        defaults = _keyword_defaults(fn)
        if set(rules) != set(defaults):
            raise ValueError(f"register({name!r}): declared params {sorted(rules)} differ from the "
                             f"function's keyword parameters {sorted(defaults)}")
        for key, default in defaults.items():
            check(key, default, rules[key])  # a default must satisfy its own rule

        @functools.wraps(fn)
        def checked(ctx: object, *, rng: np.random.Generator, balance: bool,
                    **kwargs: object) -> np.ndarray:
            _check_values(name, rules, kwargs)
            if cost is not None:
                scale.check(name, cost, ctx.n, ctx.num_classes, ctx.features.shape[1], balance,
                            {**defaults, **kwargs})
            return fn(ctx, rng=rng, balance=balance, **kwargs)

        spec = SelectorSpec(
            name=name, fn=checked, family=family, window=window, balance=balance, paper=paper,
            weigher=weigher, needs_model=needs_model, defaults=defaults, rules=rules,
            cost=cost,
        )
        REGISTRY.register(name)(spec)
        return checked

    return deco


def _check_values(method: str, rules: dict[str, Rule], params: dict) -> None:
    for key, value in params.items():
        if key not in rules:
            raise ParamError(key, value, f"not a parameter of {method!r}; allowed: "
                                         f"{', '.join(rules) or 'none'}")
        check(key, value, rules[key])


def validate_params(method: str, params: dict) -> dict:
    """The recipe's params merged over the method's defaults, or :class:`ParamError` (one line:
    the parameter, the value, what is allowed) for an unknown parameter or a value outside its
    declared rule: type (a bool is not a number), range, choices, non-finite numbers."""
    spec = get(method)
    _check_values(method, spec.rules, params)
    return {**spec.defaults, **params}


def get(name: str) -> SelectorSpec:
    return REGISTRY.get(name)


def load_all() -> Registry[SelectorSpec]:
    """Every registered selector (the first call imports the selector modules)."""
    return REGISTRY
