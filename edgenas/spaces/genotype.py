"""Genotypes: a space name, its full configuration and the architecture, as versioned JSON.

A genotype file carries the config it was searched in, so a network is rebuilt identically
years later. ``load_genotype`` also takes a space's own text form (the DARTS paper's
``Genotype(normal=..., ...)``, a NAS-Bench-201 ``arch_str``) and bare architecture objects, so
published cells can be used directly: every registered space is asked whether it recognises them
(``SearchSpace.arch_from_text`` / ``owns_arch``), so no space is named here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenas.errors import GenotypeError
from edgenas.io import atomic_write_text

FORMAT = "edgenas.genotype"
VERSION = 1


@dataclass
class Genotype:
    space: str
    config: dict
    arch: Any  # the space's arch object (DartsArch, ProxylessArch)
    preset: str | None = None
    meta: dict = field(default_factory=dict)  # free-form provenance (search run, target, ...)

    def resolve(self):
        """The SearchSpace this genotype lives in."""
        from edgenas.spaces.base import space_class

        return space_class(self.space).from_config(self.config, preset=self.preset)

    def to_dict(self) -> dict:
        space = self.resolve()
        d = {"format": FORMAT, "version": VERSION, "space": self.space, "preset": self.preset,
             "config": self.config, "arch": space.arch_to_json(self.arch)}
        if self.meta:
            d["meta"] = self.meta
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path) -> Path:
        return atomic_write_text(path, self.to_json())


def genotype_from_dict(data: dict, space: str | None = None, preset: str | None = None,
                       overrides: dict | None = None) -> Genotype:
    """Validate a parsed JSON object (envelope or bare arch) into a Genotype."""
    from edgenas.spaces.base import list_spaces, space_class

    if not isinstance(data, dict):
        raise GenotypeError(f"a genotype must be a JSON object, got {type(data).__name__}")
    if "arch" in data:
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise GenotypeError(f"not an edgenas genotype (format {fmt!r}, expected {FORMAT!r})")
        version = data.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise GenotypeError(f"genotype version {version!r} is newer than this edgenas reads ({VERSION}); upgrade edgenas")
        file_space = data.get("space")
        if space and file_space and space != file_space:
            raise GenotypeError(f"genotype is for space {file_space!r}, not {space!r}")
        space = file_space or space
        if not space:
            raise GenotypeError(f"genotype has no 'space' field; give --space ({', '.join(list_spaces())})")
        preset = preset or data.get("preset")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise GenotypeError("genotype 'config' must be an object")
        arch_data, meta = data["arch"], data.get("meta") or {}
    else:  # a bare arch: infer the space from its keys
        space = space or _owner(data)
        if space is None:
            raise GenotypeError("cannot tell the space of this genotype: give --space, or use an edgenas genotype file")
        config, arch_data, meta = {}, data, {}
    cls = space_class(space)
    config = {**config, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    sp = cls.from_config(config, preset=preset if preset in cls.presets else None)
    return Genotype(space=space, config=sp.config_dict(), arch=sp.parse_arch(arch_data),
                    preset=getattr(sp, "preset", None), meta=meta)


def load_genotype(source: str, space: str | None = None, preset: str | None = None,
                  overrides: dict | None = None) -> Genotype:
    """A genotype from a file path, a JSON string, or a DARTS ``Genotype(...)`` string."""
    text = source
    if _looks_like_path(source):
        path = Path(source)
        if path.is_dir() and (path / "genotype.json").is_file():
            path = path / "genotype.json"
        if not path.is_file():
            raise GenotypeError(f"no such genotype file: {source}")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise GenotypeError(f"cannot read genotype file {source}: {e}") from None
    stripped = text.strip()
    found = _from_text(stripped)
    if found is not None:  # a space's own text form
        owner, arch = found
        if space not in (None, owner.name):
            raise GenotypeError(f"this genotype text is a {owner.name} genotype, not {space!r}")
        return genotype_from_dict({"space": owner.name, "arch": arch}, preset=preset or owner.text_preset,
                                  overrides=overrides)
    if not stripped.startswith(("{", "[")):
        raise GenotypeError(f"{source!r} is not a genotype file, a JSON object or a space's genotype text "
                            "(a DARTS 'Genotype(...)', a NAS-Bench-201 arch_str)")
    from edgenas.errors import InputError
    from edgenas.schemas import load_json_text

    try:  # bounded: size and nesting depth are checked before parsing (a 200,000-deep file is refused fast)
        data = load_json_text(stripped, "genotype")
    except InputError as e:
        raise GenotypeError(str(e)) from None
    return genotype_from_dict(data, space=space, preset=preset, overrides=overrides)


def _owner(data: dict) -> str | None:
    """The space whose bare arch ``data`` is, or None (see ``_root``)."""
    from edgenas.spaces.base import list_spaces, space_class

    cls = _root([space_class(n) for n in list_spaces() if space_class(n).owns_arch(data)])
    return cls.name if cls else None


def _from_text(text: str):
    """(space class, arch data) of the space that reads ``text`` as its own text form, else None."""
    from edgenas.spaces.base import list_spaces, space_class

    cls = _root([space_class(n) for n in list_spaces() if space_class(n).arch_from_text(text) is not None])
    return (cls, cls.arch_from_text(text)) if cls else None


def _root(claimers: list):
    """Of the spaces that claim a genotype, the one the others derive from (a plug-in space built on
    ProxylessSpace reads its arch objects too); None when none, or when unrelated spaces both claim it."""
    roots = [c for c in claimers if not any(o is not c and issubclass(c, o) for o in claimers)]
    return roots[0] if len(roots) == 1 else None


def _looks_like_path(source: str) -> bool:
    s = source.strip()
    if s.startswith(("{", "|")) or "Genotype(" in s or "\n" in s:
        return False
    return os.sep in s or s.endswith(".json") or os.path.exists(s)
