"""One registry helper: a decorator to register classes by ``name``, one front door to create them.

Built-ins live in the modules listed at construction and are imported on first use, so that
importing a registry is cheap and a module that registers is never imported twice by hand.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from edgenas.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self._modules = builtin_modules
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        self._classes[cls.name] = cls
        return cls

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for m in self._modules:
                importlib.import_module(m)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        self._load()
        if name not in self._classes:
            raise InputError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._classes))}")
        return self._classes[name]

    def create(self, name: str, *args, **kwargs) -> T:
        return self.get(name)(*args, **kwargs)
