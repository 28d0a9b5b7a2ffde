"""Benchmarks: one script per figure, each measuring against its named baseline in the same run."""
