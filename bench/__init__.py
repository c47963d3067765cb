"""Benchmarks: ``proofmint bench`` (the harness) and its report."""

from .harness import BenchResult, bench

__all__ = ["BenchResult", "bench"]
