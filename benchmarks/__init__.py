"""Benchmarks against the real broker and store; each prints its figures. Run all with `make bench`."""
