"""edgenas: hardware-aware NAS with measured latency tables.

Importing edgenas (or any of its modules but the CLI) leaves process-global state alone: see
``edgenas.process`` for the settings the ``edgenas`` command makes, and where.
"""

__version__ = "0.1.0"


# The Python API (edgenas/api.py), loaded on first use: `import edgenas` stays cheap (no torch).
_API = ("Predictor", "profile", "search_network", "export_network")


def __getattr__(name):
    if name in _API:
        from edgenas import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgenas' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
