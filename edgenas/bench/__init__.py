"""Tabular benchmarks of search quality (NAS-Bench-201 with real device latency)."""
