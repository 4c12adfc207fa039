"""Declared selector parameters: the type and allowed values of each, checked before any work.

A selector declares its parameters in its ``@register(..., params={...})`` line with the small
rules below; :func:`coreset.scores.registry.validate_params` applies them to a recipe's params when
``params.yaml`` is read, so a typo fails in seconds, not after download, pretrain and embed.
Every rule rejects bools where numbers are expected (YAML ``true`` is not 1) and non-finite floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real


class ParamError(ValueError):
    """A selector parameter value is not allowed: names the parameter, the value and the rule."""

    def __init__(self, param: str, value: object, allowed: str) -> None:
        super().__init__(f"{param} = {value!r} is not allowed: {allowed}")
        self.param, self.value, self.allowed = param, value, allowed


@dataclass(frozen=True)
class Choice:
    """One of a fixed tuple of strings."""

    values: tuple[str, ...]

    def allowed(self) -> str:
        return f"one of {', '.join(self.values)}"

    def ok(self, value: object) -> bool:
        return isinstance(value, str) and value in self.values


@dataclass(frozen=True)
class Int:
    """An integer (not a bool) in [low, high], except the values in ``exclude``."""

    low: int | None = None
    high: int | None = None
    exclude: tuple[int, ...] = ()

    def allowed(self) -> str:
        parts = ["an integer"]
        if self.low is not None:
            parts.append(f">= {self.low}")
        if self.high is not None:
            parts.append(f"<= {self.high}")
        text = " ".join(parts)
        return text + (f", not {', '.join(map(str, self.exclude))}" if self.exclude else "")

    def ok(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, Integral):
            return False
        above = self.low is None or value >= self.low
        below = self.high is None or value <= self.high
        return above and below and value not in self.exclude


@dataclass(frozen=True)
class Float:
    """A finite real number (an int is accepted, a bool is not) in an interval; an end is open
    when ``open_low`` / ``open_high``, unbounded when None."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def allowed(self) -> str:
        if self.low is None and self.high is None:
            return "a finite number"
        if self.high is None:
            return f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        if self.low is None:
            return f"a finite number {'<' if self.open_high else '<='} {self.high:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"

    def ok(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below


@dataclass(frozen=True)
class Bool:
    """true or false (not 0 / 1)."""

    def allowed(self) -> str:
        return "true or false"

    def ok(self, value: object) -> bool:
        return isinstance(value, bool)


Rule = Choice | Int | Float | Bool

# Rules shared by several selectors.
MAX_RATIO = Float(0.0, 1.0, open_low=True)  # the longest greedy order: ceil(max_ratio * n_c) picks
MODELS = Choice(("all", "first"))  # average over every pretrained model, or the first only
BATCH_SIZE = Int(1)
POSITIVE = Float(0.0, open_low=True)


def check(param: str, value: object, rule: Rule) -> None:
    """Raise :class:`ParamError` unless ``rule`` allows ``value``."""
    if not rule.ok(value):
        raise ParamError(param, value, rule.allowed())
