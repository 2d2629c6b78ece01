"""Benchmark helpers for reconciler: realistic synthetic environments (see :mod:`bench.image`)."""
