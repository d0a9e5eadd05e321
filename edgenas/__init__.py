"""edgenas: hardware-aware NAS with measured latency tables.

Importing edgenas (or any of its modules but the CLI) leaves process-global state alone: see
``edgenas.process`` for the settings the ``edgenas`` command makes, and where.
"""

__version__ = "0.1.0"
