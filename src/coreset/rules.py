"""The one rule vocabulary of every value the project validates: the keys of params.yaml
(coreset.config) and the declared parameters of every selector (``@register(..., params=...)``,
checked by coreset.scores.registry.validate_params).

A rule knows what it allows (``allowed()``, the text of the one-line message), whether a value
passes (``ok(value)``), and, called as ``rule(key, value)``, returns the value typed (an int, a
float, a tuple) or raises :class:`RuleError` naming the key, the value and what is allowed.
Every rule refuses bools where numbers are expected (YAML ``true`` is not 1) and non-finite
numbers. Interval ends are closed unless ``open_low`` / ``open_high``; None = unbounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any


class RuleError(ValueError):
    """A value is not allowed: names the key (or parameter), the value and the rule."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key} = {value!r} is not allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed

    @property
    def param(self) -> str:  # a selector parameter's name (scores.params.ParamError)
        return self.key


def number_hint(value: Any) -> str:
    """PyYAML reads 1e-3 (no dot) as text: say so, it is the most common surprise."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (YAML reads this as text; write it with a dot, e.g. 1.0e-3)"


class Rule:
    """Base: ``allowed`` and ``ok`` define the rule; calling it checks and types a value."""

    def allowed(self) -> str:
        raise NotImplementedError

    def ok(self, value: object) -> bool:
        raise NotImplementedError

    def typed(self, value: Any) -> Any:
        return value

    def __call__(self, key: str, value: Any) -> Any:
        if not self.ok(value):
            raise RuleError(key, value, self.allowed())
        return self.typed(value)


def is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Choice(Rule):
    """One of a fixed tuple of strings."""

    values: tuple[str, ...]

    def allowed(self) -> str:
        return f"one of {', '.join(self.values)}"

    def ok(self, value: object) -> bool:
        return isinstance(value, str) and value in self.values


@dataclass(frozen=True)
class Int(Rule):
    """An integer (not a bool) in [low, high], except the values in ``exclude``."""

    low: int | None = None
    high: int | None = None
    exclude: tuple[int, ...] = ()

    def allowed(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"an integer in {self.low}..{self.high}"
        elif self.low is not None:
            text = f"an integer >= {self.low}"
        elif self.high is not None:
            text = f"an integer <= {self.high}"
        else:
            text = "an integer"
        return text + (f", not {', '.join(map(str, self.exclude))}" if self.exclude else "")

    def ok(self, value: object) -> bool:
        if not is_int(value):
            return False
        above = self.low is None or value >= self.low
        below = self.high is None or value <= self.high
        return above and below and value not in self.exclude

    def typed(self, value: Any) -> int:
        return int(value)

    def __call__(self, key: str, value: Any) -> int:
        if not self.ok(value):
            raise RuleError(key, value, self.allowed() + number_hint(value))
        return int(value)


@dataclass(frozen=True)
class Float(Rule):
    """A finite real number (an int is accepted, a bool is not) in an interval."""

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
        if not is_number(value):
            return False
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def __call__(self, key: str, value: Any) -> float:
        if not self.ok(value):
            raise RuleError(key, value, self.allowed() + number_hint(value))
        return float(value)


@dataclass(frozen=True)
class Bool(Rule):
    """true or false (not 0 / 1, not "yes")."""

    def allowed(self) -> str:
        return "true or false"

    def ok(self, value: object) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string (a path, a name)."""

    what: str = "a non-empty path"

    def allowed(self) -> str:
        return self.what

    def ok(self, value: object) -> bool:
        return isinstance(value, str) and bool(value.strip())


@dataclass(frozen=True)
class Items(Rule):
    """A list whose items pass the rule ``item``, without duplicates; typed as a tuple."""

    item: Rule
    what: str
    nonempty: bool = True
    increasing: bool = False
    max_items: int | None = None

    def allowed(self) -> str:
        return f"a {'non-empty ' if self.nonempty else ''}list of {self.what}"

    def ok(self, value: object) -> bool:
        return self._problem(value) is None

    def _problem(self, value: object) -> str | None:
        if not isinstance(value, list) or (self.nonempty and not value):
            return self.allowed()
        if self.max_items is not None and len(value) > self.max_items:
            return f"a list of at most {self.max_items} {self.what}"
        if not all(self.item.ok(x) for x in value):
            return f"a list of {self.what}"
        if _has_duplicates(value):
            return f"a list of {self.what} without duplicates"
        if self.increasing and list(value) != sorted(value):
            return f"a list of {self.what} in increasing order"
        return None

    def __call__(self, key: str, value: Any) -> tuple:
        problem = self._problem(value)
        if problem is not None:
            raise RuleError(key, value, problem)
        return tuple(self.item.typed(x) for x in value)


def _has_duplicates(values: list) -> bool:
    try:
        return len(set(values)) != len(values)
    except TypeError:  # unhashable items (lists): compare their text
        return len({repr(x) for x in values}) != len(values)


def check(key: str, value: object, rule: Rule) -> None:
    """Raise :class:`RuleError` unless ``rule`` allows ``value``."""
    if not rule.ok(value):
        raise RuleError(key, value, rule.allowed())
