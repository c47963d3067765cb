"""Prover: inputs -> witness -> proof, on a backend (local processes, Ray), written as proof bundles."""

from .bundle import ProofBundle, load_bundle
from .proving import ProveResult, prove

__all__ = ["ProofBundle", "ProveResult", "load_bundle", "prove"]
