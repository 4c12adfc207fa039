"""One registry pattern for everything chosen by name in params.yaml (selectors, models, datasets,
corruptions, paper tables), after timm's and torchvision's model registries.

A :class:`Registry` maps a name to an object plus its metadata. Entries are added by decorator
(``@REG.register("name", key=value)``) next to their code, or, where the code needs torch and the
name must be known without it (validation of params.yaml never imports torch), by a one-line
catalog entry that names the implementing module: ``REG.add("name", "coreset.models.zoo",
min_size=16)``; the object is imported on first use. Lists of names are always derived from the
registry, never kept by hand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered name: its object (imported lazily when given as a module) and metadata."""

    name: str
    module: str | None = None
    obj: T | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        if self.obj is None:
            assert self.module is not None
            found = getattr(importlib.import_module(self.module), self.name, None)
            if found is None:
                raise LookupError(f"{self.module} defines no {self.name!r}, which its registry "
                                  f"entry names: add the function or fix the entry")
            self.obj = found
        return self.obj


class Registry(Generic[T]):
    """Name -> object. ``kind`` names what is registered in error messages; ``discover`` is
    called once before the first lookup (it imports the modules whose decorators register)."""

    def __init__(self, kind: str, discover: Callable[[], object] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._discover = discover
        self._discovered = discover is None

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""
        def deco(obj: T) -> T:
            self._put(Entry(name, obj=obj, meta=meta))
            return obj
        return deco

    def add(self, name: str, module: str, **meta: Any) -> None:
        """Catalog entry: ``module`` defines ``name``; it is imported on first :meth:`get`."""
        self._put(Entry(name, module=module, meta=meta))

    def _put(self, entry: Entry[T]) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} registered twice")
        self._entries[entry.name] = entry

    def _ready(self) -> None:
        if not self._discovered:
            self._discovered = True
            assert self._discover is not None
            self._discover()

    def entry(self, name: str) -> Entry[T]:
        self._ready()
        if name not in self._entries:
            known = ", ".join(sorted(self.names()))
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def meta(self, name: str, key: str, default: Any = None) -> Any:
        return self.entry(name).meta.get(key, default)

    def names(self) -> tuple[str, ...]:
        self._ready()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ready()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self.get(name)) for name in self.names()]

    def __len__(self) -> int:
        return len(self.names())
