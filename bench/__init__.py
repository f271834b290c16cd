"""Benchmark scripts and the tooling they share (run them from the repository root)."""
