"""edgenas: hardware-aware NAS with measured latency tables."""

__version__ = "0.1.0"
