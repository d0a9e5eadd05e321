"""SearchSpace: the one interface every space implements, and the registry that finds them.

A space is a typed configuration (a dataclass, fixed by a preset plus overrides) and knows:
- which op instances a genotype's network executes (``op_specs``), in order;
- its choice points, each with the op instances every option adds (``choice_points``);
- how to build the standalone network of a genotype, and a supernet for search;
- how to sample, validate and derive genotypes, and how to recognise its own genotypes in bare
  JSON or text (``owns_arch``, ``arch_from_text``);
- its zero op (the option that computes nothing) and what its derivation keeps (``derived_probs``);
- its skip op (what DARTS-style searches collapse into: ``skip_op``, ``skip_count``);
- optionally, the features its whole networks are fitted by (``WholeNetFeatures``, torch-free, found
  by space name with ``wholenet_features``; without them a fit is over op-key counts).
Latency, search and CLI code ask the space these questions, so none of it needs to know which
space it is in (no code outside ``edgenas/spaces`` compares a space's name).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from edgenas.errors import GenotypeError, SpaceError
from edgenas.ops.spec import OpSpec
from edgenas.registry import Registry


@dataclass(frozen=True)
class ChoicePoint:
    """One decision of the search: ``options`` for the row ``row`` of arch parameter ``param``.

    ``specs[k]`` lists every op instance that choosing option k adds to the network (a DARTS
    edge is shared by every cell of its type, so one option can add several instances).
    """

    name: str
    param: str
    row: int
    options: tuple[str, ...]
    specs: tuple[tuple[OpSpec, ...], ...]


class SearchSpace(ABC):
    name: ClassVar[str]
    config_cls: ClassVar[type]
    presets: ClassVar[dict[str, dict[str, Any]]]
    default_preset: ClassVar[str]
    preset_help: ClassVar[dict[str, str]] = {}
    arch_cls: ClassVar[type | None] = None  # its (frozen dataclass) arch objects: search checkpoints may hold them
    zero_op: ClassVar[str | None] = None  # the option whose output is zeros (supernets never compute it)
    text_preset: ClassVar[str | None] = None  # preset a genotype in the space's own text form defaults to
    # The parameter-free identity option weight-sharing searches collapse into (DARTS' skip_connect): what
    # the darts strategy's skip guard counts and its skip dropout drops. None: the space has none (both off).
    skip_op: ClassVar[str | None] = None

    def __init__(self, config):
        self.config = config
        self.validate_config()

    # ---- construction ----------------------------------------------------------
    @classmethod
    def from_preset(cls, preset: str | None = None, **overrides) -> "SearchSpace":
        preset = preset or cls.default_preset
        if preset not in cls.presets:
            raise SpaceError(
                f"unknown preset {preset!r} for space {cls.name!r}; known: {', '.join(cls.presets)}"
            )
        values = dict(cls.presets[preset])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_config(values, preset=preset)

    @classmethod
    def from_config(cls, values: dict, preset: str | None = None) -> "SearchSpace":
        known = {f.name for f in dataclasses.fields(cls.config_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SpaceError(f"unknown {cls.name} config field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        base = dict(cls.presets[preset or cls.default_preset])
        base.update(values)
        try:
            cfg = cls.config_cls(**_tuples(base))
        except TypeError as e:
            raise SpaceError(f"bad {cls.name} config: {e}") from None
        space = cls(cfg)
        space.preset = preset
        return space

    def config_dict(self) -> dict:
        return _lists(dataclasses.asdict(self.config))

    def validate_config(self) -> None:
        """Raise SpaceError for a configuration the space cannot build."""

    def require_positive(self, *fields: str) -> None:
        """SpaceError unless every named config field is an integer >= 1 (shared by the spaces' checks)."""
        for name in fields:
            value = getattr(self.config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpaceError(f"{self.name} config: {name} must be a positive integer, got {value!r}")

    # ---- what the latency code needs ------------------------------------------
    @abstractmethod
    def op_specs(self, arch) -> list[OpSpec]:
        """Every op instance the network of ``arch`` executes, fixed parts included, in order."""

    @abstractmethod
    def choice_points(self) -> list[ChoicePoint]:
        """The decisions of the search, with the op instances every option adds."""

    @abstractmethod
    def fixed_specs(self) -> list[OpSpec]:
        """Op instances every architecture executes (stem, preprocess, head)."""

    def all_op_specs(self) -> list[OpSpec]:
        """Every op instance any architecture of the space can need: what a table must hold."""
        seen = dict.fromkeys(self.fixed_specs())
        for cp in self.choice_points():
            for specs in cp.specs:
                seen.update(dict.fromkeys(specs))
        return list(seen)

    # ---- genotypes ---------------------------------------------------------------
    @abstractmethod
    def sample(self, rng) -> Any:
        """A uniformly random architecture (``rng`` is a ``random.Random``)."""

    @abstractmethod
    def parse_arch(self, data) -> Any:
        """Validate JSON-like data into this space's arch object; GenotypeError if it does not fit."""

    @abstractmethod
    def arch_to_json(self, arch) -> Any:
        """The JSON-ready form of an arch (inverse of ``parse_arch``)."""

    @abstractmethod
    def describe_arch(self, arch) -> list[str]:
        """Human-readable lines naming every choice of the arch."""

    @abstractmethod
    def arch_weights(self, arch) -> dict:
        """Supernet weights that select exactly this arch (one-hot rows, zero rows for unused edges)."""

    @abstractmethod
    def derive(self, weights: dict) -> Any:
        """The discrete arch a supernet's arch weights stand for (argmax, DARTS' top-2 edges)."""

    def derived_probs(self, param: str, probs):
        """How much of each option of ``probs`` ([rows, options] of arch param ``param``) the arch that
        ``derive`` returns is expected to keep: what ``ExpectedLatency(mode="derived")`` weights op
        latencies by. Default: ``probs`` itself, right for a per-row argmax derivation; a space whose
        derivation also drops rows (DARTS keeps 2 edges per node) overrides it."""
        return probs

    def skip_columns(self) -> dict[str, int]:
        """Per arch parameter, the column of ``skip_op`` in its options (empty when the space has none)."""
        return {cp.param: cp.options.index(self.skip_op) for cp in self.choice_points() if self.skip_op in cp.options}

    def skip_count(self, arch) -> int:
        """How many choices of ``arch`` are ``skip_op``: what a skip-collapse guard watches (0 without one).
        Default: every row of every arch parameter; a space whose collapse shows in part of the arch
        only (DARTS: the normal cell) overrides it."""
        cols = self.skip_columns()
        if not cols:
            return 0
        return int(sum(float(w[:, cols[k]].sum()) for k, w in self.arch_weights(arch).items() if k in cols))

    @abstractmethod
    def decisions(self) -> list[int]:
        """Sizes of the categorical decisions that spell an arch (for controllers and evolution)."""

    @abstractmethod
    def arch_from_decisions(self, choices: list[int]) -> Any:
        """The arch spelled by one index per decision (inverse of ``decisions_of``)."""

    @abstractmethod
    def decisions_of(self, arch) -> list[int]:
        """One index per decision for an arch."""

    # ---- networks ----------------------------------------------------------------
    # ---- recognising genotypes (load_genotype asks every registered space) ----------
    @classmethod
    def owns_arch(cls, data) -> bool:
        """Whether bare JSON arch data (no edgenas envelope) has this space's shape."""
        return False

    @classmethod
    def arch_from_text(cls, text: str):
        """Arch data (what ``parse_arch`` takes) when ``text`` is this space's own text form (the DARTS
        paper's ``Genotype(...)``, a NAS-Bench-201 ``arch_str``), else None."""
        return None

    @abstractmethod
    def build(self, arch, **kwargs):
        """The standalone ``nn.Module`` of an arch, for retraining and export."""

    @abstractmethod
    def supernet(self, **kwargs):
        """A weight-sharing supernet: an ``edgenas.spaces.mixed.Supernet`` (its contract is all the
        strategies use)."""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        c = self.config
        return (c.in_channels, c.input_size, c.input_size)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def genotype(self, arch):
        from edgenas.spaces.genotype import Genotype

        return Genotype(space=self.name, config=self.config_dict(), arch=arch, preset=getattr(self, "preset", None))


_SPACES: Registry[SearchSpace] = Registry(
    "space", tuple(f"edgenas.spaces.{m}" for m in ("darts", "nb201", "proxyless")),
    group="edgenas.spaces", base=SearchSpace, error=SpaceError)


def register_space(cls):
    return _SPACES.register(cls)


def space_class(name: str) -> type[SearchSpace]:
    return _SPACES.get(name)


def list_spaces() -> list[str]:
    return _SPACES.names()


def create_space(name: str, preset: str | None = None, **overrides) -> SearchSpace:
    """The one front door: a space by name and preset, with config overrides (None = keep)."""
    return space_class(name).from_preset(preset, **overrides)


class WholeNetFeatures:
    """How ``edgenas.latency.fit`` reads a space's whole networks when the space has a model of its
    cell better than op-key counts (NAS-Bench-201: live edges, neighbour fusion, a learned residual).

    A space without one is fitted over the counts of its networks' op keys. Torch-free by contract:
    fitting, CSV import and whole-network prediction never import torch, so an implementation lives
    in a module that does not (``edgenas.spaces.nb201_arch``) and registers an instance with
    ``register_wholenet_features``; ``wholenet_features(space)`` finds it without importing the space
    (a plug-in space registers its own when the ``edgenas.spaces`` entry point's module is imported).
    """

    space: str  # the space whose networks these are
    arch_cls: type  # the cell arch objects fitted and predicted (not op-key dicts)
    prunings: tuple[str, ...] = ("path",)  # which dead edges a runtime removes; the fit picks one ("auto")
    residual: bool = False  # whether ``codes`` feeds a learned correction (fit level ``residual``)
    # feature-name prefixes that refine a pruning (fitted once it is chosen, never used to choose it)
    refinements: tuple[str, ...] = ()

    def reads(self, text: str) -> bool:
        """Whether ``text`` is a cell in this space's own text form."""
        raise NotImplementedError

    def parse(self, text: str):
        """The cell arch of its text form (GenotypeError when it is not one)."""
        raise NotImplementedError

    def to_text(self, arch) -> str:
        raise NotImplementedError

    def connected(self, arch) -> bool:
        """False when the cell's output does not depend on its input (not fitted: predicted as a constant)."""
        return True

    def feature_names(self, level: str) -> list[str]:
        """Every feature of fit level ``level``, ``const`` first."""
        raise NotImplementedError

    def features(self, arch, level: str, pruning: str) -> dict[str, float]:
        """Sparse features of one connected cell."""
        raise NotImplementedError

    def codes(self, archs, pruning: str):
        """(n, k) categorical inputs of the learned residual correction (when ``residual``)."""
        raise NotImplementedError

    def prior(self, space, op_ms) -> dict[str, float]:
        """Per-feature prior latencies from an op table (``op_ms(specs) -> {key: ms}``) for a ``space``
        of this name; InputError when the space cannot derive one."""
        from edgenas.errors import InputError

        raise InputError(f"a prior from an op table is not defined for {self.space} networks")


_WHOLENET: Registry[WholeNetFeatures] = Registry(
    "whole-network features", ("edgenas.spaces.nb201_arch",), group="edgenas.spaces", error=SpaceError)


def register_wholenet_features(obj: WholeNetFeatures) -> WholeNetFeatures:
    return _WHOLENET.add(obj.space, obj)


def wholenet_features(space: str | None = None, *, text: str | None = None, arch=None) -> WholeNetFeatures | None:
    """The whole-network features of ``space``, or of the space whose cell text ``text`` or cell arch
    object ``arch`` is; None: that space's networks are fitted over op-key counts (or no space's cell)."""
    items = _WHOLENET.items()
    if text is not None:
        return next((f for f in items.values() if f.reads(text)), None)
    if arch is not None:
        return next((f for f in items.values() if isinstance(arch, f.arch_cls)), None)
    return items.get(space)


def _tuples(d: dict) -> dict:
    def conv(v):
        return tuple(conv(x) for x in v) if isinstance(v, list) else v

    return {k: conv(v) for k, v in d.items()}


def _lists(d: dict) -> dict:
    def conv(v):
        return [conv(x) for x in v] if isinstance(v, (list, tuple)) else v

    return {k: conv(v) for k, v in d.items()}


def require(cond: bool, message: str) -> None:
    """Raise GenotypeError(message) unless cond: the one-line validation helper of the spaces."""
    if not cond:
        raise GenotypeError(message)
