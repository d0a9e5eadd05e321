"""Importing edgenas changes no process-global state a caller did not ask for (``edgenas.process``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import clean_env

REPO = Path(__file__).resolve().parents[1]

MODULES = ["edgenas", "edgenas.paths", "edgenas.registry", "edgenas.devices", "edgenas.latency.store",
           "edgenas.latency.predictor", "edgenas.profiling.base", "edgenas.profiling.runner", "edgenas.profiling.bundle",
           "edgenas.spaces", "edgenas.search.base", "edgenas.search.pipeline", "edgenas.search.blackbox.base",
           "edgenas.export.pipeline"]


def probe(code: str, **env):
    """The JSON ``code`` prints, run in a fresh interpreter; OMP_WAIT_POLICY unset unless given (conftest sets it)."""
    base = clean_env(PYTHONPATH=str(REPO))
    base.pop("OMP_WAIT_POLICY", None)
    r = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_importing_edgenas_leaves_environment_threads_seed_and_malloc_alone():
    out = probe(
        "import importlib, json, os, torch\n"
        "env, threads, seed = dict(os.environ), torch.get_num_threads(), torch.initial_seed()\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "from edgenas.profiling.base import list_backends; from edgenas.spaces import list_spaces\n"
        "from edgenas.search.base import list_strategies; list_backends(); list_spaces(); list_strategies()\n"
        "from edgenas.profiling import allocator\n"
        "print(json.dumps({'env': {k: [env.get(k), os.environ.get(k)] for k in set(env) | set(os.environ)\n"
        "                          if env.get(k) != os.environ.get(k)},\n"
        "                  'threads': [threads, torch.get_num_threads()], 'seed': [seed, torch.initial_seed()],\n"
        "                  'malloc_pinned': allocator._state.get('pinned')}))")
    assert out["env"] == {}
    assert out["threads"][0] == out["threads"][1]
    assert out["seed"][0] == out["seed"][1]
    assert out["malloc_pinned"] is None


def test_the_command_prefers_passive_openmp_unless_the_user_chose():
    code = "import json, os, edgenas.cli.main; print(json.dumps(os.environ.get('OMP_WAIT_POLICY')))"
    assert probe(code) == "PASSIVE"
    assert probe(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
