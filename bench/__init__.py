"""Benchmarks: ratios against a reference run side by side in one process (never asserted in tests)."""
