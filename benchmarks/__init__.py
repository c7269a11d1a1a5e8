"""Benchmarks: each module has ``run(quick: bool = False) -> dict[str, float]``."""
