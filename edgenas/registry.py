"""One registry helper for every extension point: ops, spaces, backends and strategies.

A registry maps a name to what it builds (a class with a ``name`` attribute, or any object added
under an explicit name). It is filled on first use, in this order:

1. the built-in modules listed at construction (importing them runs their ``@register`` lines);
2. the package entry points of its group (``edgenas.backends``, ``edgenas.spaces``,
   ``edgenas.strategies``), so a separate package adds a backend, space or strategy without
   editing edgenas. An entry point names a module to import (its decorators register) or a class
   to register, e.g. in the plug-in's ``pyproject.toml``::

       [project.entry-points."edgenas.backends"]
       mybackend = "my_pkg.backend:MyBackend"

A name is registered once: a second class under a taken name is refused with an error naming both,
never silently overwritten (a plug-in cannot replace a built-in by accident). A plug-in that fails
to import, or clashes, is skipped with one line on stderr naming its entry point, so a broken
third-party package does not take every command down with it; ``EDGENAS_DEBUG=1`` raises instead.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from edgenas.errors import InputError

T = TypeVar("T")

_reported: set[str] = set()  # entry points already reported broken (two registries may share a group)


class DuplicateName(ValueError):
    """A name registered twice in one registry."""


def _where(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def plugin_entry_points(group: str) -> list[EntryPoint]:
    """The installed entry points of ``group``, sorted by name (a stable load order)."""
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


class Registry(Generic[T]):
    """Name -> class (or object), filled from built-in modules, then from ``group``'s entry points.

    ``base``: the classes an entry point of the group may name for this registry; a group can feed
    several registries (weight-sharing and black-box strategies share ``edgenas.strategies``), each
    taking the classes of its own base. With no ``base`` the group's entry points are only imported
    (the op registry reads ``edgenas.spaces`` so that a plug-in space's op families register).
    ``error``: the exception an unknown name raises.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (), group: str | None = None,
                 base: type | None = None, error: type[Exception] = InputError):
        self.kind = kind
        self._modules = builtin_modules
        self._group = group
        self._base = base
        self._error = error
        self._items: dict[str, T] = {}
        self._loaded = False

    # ---- filling ------------------------------------------------------------------------------
    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; the same object again is a no-op, another one an error."""
        old = self._items.get(name)
        if old is not None and old is not obj:
            raise DuplicateName(f"{self.kind} {name!r} is already registered by {_where(old)}; "
                                f"{_where(obj)} cannot take the name (pick another name)")
        self._items[name] = obj
        return obj

    def register(self, cls):
        """Class decorator: register under ``cls.name``."""
        return self.add(cls.name, cls)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: a module being imported may itself ask the registry
        try:
            for m in self._modules:
                importlib.import_module(m)
        except BaseException:
            self._loaded = False  # a built-in that failed to import (Ctrl-C, a missing dependency): retry next time
            raise
        if self._group:
            for ep in plugin_entry_points(self._group):
                self._load_plugin(ep)

    def _load_plugin(self, ep: EntryPoint) -> None:
        label = f"{ep.group} entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
            if inspect.isclass(obj):
                if self._base is not None and issubclass(obj, self._base):
                    self.register(obj)
            elif not inspect.ismodule(obj):
                raise TypeError(f"names a {type(obj).__name__}; it must name a module or a class")
        except Exception as e:  # noqa: BLE001 - any failure of third-party code: report it, keep going
            if os.environ.get("EDGENAS_DEBUG") == "1":
                raise
            if label not in _reported:
                _reported.add(label)
                msg = " ".join(f"{type(e).__name__}: {e}".split())
                print(f"edgenas: skipped plug-in ({label}): {msg}", file=sys.stderr)

    # ---- lookup -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> dict[str, T]:
        """Every registered name and what it builds, built-ins and plug-ins alike."""
        self._load()
        return dict(sorted(self._items.items()))

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise self._error(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def create(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)
