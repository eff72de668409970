"""Benchmarks for docs/performance.md: each module prints figures and asserts nothing."""
