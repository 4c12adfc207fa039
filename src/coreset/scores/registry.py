"""The selector registry: a name -> (scoring function, family, default window/balance, paper).

A selector is a function ``fn(ctx, *, rng, balance, **params) -> np.ndarray`` that returns one
float score per training sample. Convention: a HIGHER score is taken FIRST by the window ``top``.
Selectors that produce a greedy order (herding, k-center, submodular, ...) return
``order_to_score(order, n)``, so that the first pick gets the highest score; samples the greedy
never reached get ``-inf``.
Scores never depend on the selection ratio: ``select`` applies ratio, window and balance later, so
``dvc exp run -S ratio=...`` never reruns a score stage (greedy orders are prefix-consistent).

Adding a selector is one function and one ``@register(...)`` line (plus a test).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

WINDOWS = ("top", "bottom", "moderate", "two-ends", "random")

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

    def uses_model(self, params: dict) -> bool:
        return self.needs_model(params) if callable(self.needs_model) else self.needs_model


REGISTRY: dict[str, SelectorSpec] = {}


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
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register ``fn`` under ``name``. Its keyword-only parameters are its params."""
    if window not in WINDOWS:
        raise ValueError(f"register({name!r}): window {window!r} not in {WINDOWS}")

    def deco(fn: ScoreFn) -> ScoreFn:
        if name in REGISTRY:
            raise ValueError(f"selector {name!r} registered twice")
        REGISTRY[name] = SelectorSpec(
            name=name, fn=fn, family=family, window=window, balance=balance, paper=paper,
            weigher=weigher, needs_model=needs_model, defaults=_keyword_defaults(fn),
        )
        return fn

    return deco


class ParamError(ValueError):
    """A selector parameter value is not allowed: names the parameter, the value and the rule."""

    def __init__(self, param: str, value: object, allowed: str) -> None:
        super().__init__(f"{param} = {value!r} is not allowed: {allowed}")
        self.param, self.value, self.allowed = param, value, allowed


def validate_params(method: str, params: dict) -> dict:
    """The recipe's params merged over the method's defaults, or ParamError for an unknown
    parameter. (Value checks per parameter are declared next to each selector.)"""
    spec = get(method)
    for name in params:
        if name not in spec.defaults:
            raise ParamError(name, params[name],
                             f"not a parameter of {method!r}; allowed: "
                             f"{', '.join(spec.defaults) or 'none'}")
    return {**spec.defaults, **params}


def get(name: str) -> SelectorSpec:
    load_all()
    if name not in REGISTRY:
        raise KeyError(f"unknown selector method {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def load_all() -> dict[str, SelectorSpec]:
    """Import every selector module so that its ``@register`` lines run."""
    from coreset.scores import _modules  # noqa: F401  (imports for their side effect)

    return REGISTRY


def order_to_score(order: np.ndarray, n: int) -> np.ndarray:
    """Greedy order (first pick first) -> score where the first pick is highest; unpicked = -inf."""
    score = np.full(n, -np.inf)
    order = np.asarray(order, dtype=np.int64)
    score[order] = np.arange(len(order), 0, -1, dtype=np.float64)
    return score


def with_class_progress(
    greedy: Callable[[np.ndarray], np.ndarray], labels: np.ndarray, balance: bool, desc: str | None
):
    """``greedy`` wrapped so that a tqdm bar advances once per class (or once, globally).
    Returns (wrapped, close); without ``desc`` the greedy is returned as it is."""
    if desc is None:
        return greedy, lambda: None
    from tqdm.auto import tqdm

    total = len(np.unique(labels)) if balance else 1
    bar = tqdm(total=total, desc=desc, unit="class" if balance else "run", leave=False)

    def wrapped(idx: np.ndarray) -> np.ndarray:
        out = greedy(idx)
        bar.update()
        return out

    return wrapped, bar.close


def per_class_orders(
    labels: np.ndarray,
    balance: bool,
    greedy: Callable[[np.ndarray], np.ndarray],
    desc: str | None = None,
) -> np.ndarray:
    """Run ``greedy(indices) -> positions into indices, first pick first`` per class or globally.

    Per-class greedy orders are merged into one score by rank within the class, so that a balanced
    top-k per class takes exactly each class's first picks.
    """
    greedy, close = with_class_progress(greedy, labels, balance, desc)
    try:
        return _merge_orders(labels, balance, greedy)
    finally:
        close()


def _merge_orders(labels: np.ndarray, balance: bool, greedy) -> np.ndarray:
    n = len(labels)
    if not balance:
        return order_to_score(greedy(np.arange(n)), n)
    score = np.full(n, -np.inf)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        order = idx[np.asarray(greedy(idx), dtype=np.int64)] if len(idx) else idx
        score[order] = np.arange(len(order), 0, -1, dtype=np.float64)
    return score
