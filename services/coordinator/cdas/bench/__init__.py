"""Benchmarks run by ``cdas bench``: each prints figures against a baseline measured in the same
run (these machines are shared and noisy, so only same-run ratios mean anything)."""
