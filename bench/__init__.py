"""Benchmarks for SPEC §11: each module prints figures and asserts nothing."""
