"""Load and component benchmarks: ``make bench`` (see bench/run.py and bench/components.py)."""
