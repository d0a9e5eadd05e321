"""No module compares a space's or a backend's name outside that space's or backend's own module.

Generic code asks the space (``SearchSpace``: zero op, skip op, genotype recognition, whole-network
cell features) or the backend (artifact, layout, runtime, precisions) instead, so adding one is one
module. This reads the package's source with ``ast`` and reports every comparison (``==``, ``!=``,
``in``, ``not in``) against a registered name, whatever the quoting or layout; naming a space as a
default argument or in a message is fine. Allowed: the owner's module and its companions in the same
package or in ``edgenas/ops`` (``spaces/nb201.py`` -> ``spaces/nb201_arch.py``, ``ops/nb201_ops.py``)
and the registries. ``tests/test_backends.py::test_generic_code_names_no_backend`` is the stricter
check of a few generic modules, which must not even mention a backend.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgenas
from edgenas.profiling.base import backend_class, list_backends
from edgenas.spaces.base import list_spaces, space_class

ROOT = Path(edgenas.__file__).parent
REGISTRIES = {"registry.py", "spaces/base.py", "profiling/base.py"}


def _owned(names_to_class) -> dict[str, set[str]]:
    """Per name, the package files (relative to the package root) that may compare it."""
    out = {}
    for name, cls in names_to_class.items():
        owner = Path(*cls.__module__.split(".")[1:]).with_suffix(".py")
        dirs = {owner.parent, Path("ops")}
        out[name] = {str(p.relative_to(ROOT)) for d in dirs for p in (ROOT / d).glob("*.py")
                     if p.stem.startswith(owner.stem)}
    return out


def _compared_strings(tree) -> list[tuple[int, str]]:
    """(line, string) of every string constant a comparison tests against."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for side in [node.left, *node.comparators]:
            items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            found += [(node.lineno, it.value) for it in items
                      if isinstance(it, ast.Constant) and isinstance(it.value, str)]
    return found


def name_comparisons(root: Path = ROOT) -> list[str]:
    owned = {**_owned({n: space_class(n) for n in list_spaces()}),
             **_owned({n: backend_class(n) for n in list_backends()})}
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = str(path.relative_to(root))
        if rel in REGISTRIES:
            continue
        for line, value in _compared_strings(ast.parse(path.read_text(), rel)):
            if value in owned and rel not in owned[value]:
                bad.append(f"{rel}:{line} compares {value!r}")
    return bad


def test_scanner_sees_comparisons_in_any_form():
    src = ('if space == "nb201": pass\nif "darts" != s: pass\nok = b in ("tflite", "x")\n'
           'ok = b not in ["onnxruntime"]\nfor m in ("darts", "nb201"): pass\ndef f(space="nb201"): pass\n')
    assert [v for _, v in _compared_strings(ast.parse(src))] == ["nb201", "darts", "tflite", "x", "onnxruntime"]


def test_no_space_or_backend_name_is_compared_outside_its_own_module():
    assert name_comparisons() == []
