"""Benchmarks: `make bench` runs `python -m bench`, each `bench/bench_*.py` in its own process.
Every benchmark prints its figures beside a baseline measured in the same run."""
