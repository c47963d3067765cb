"""Prover: inputs -> witness -> proof, written as proof bundles."""

from .bundle import ProofBundle, load_bundle
from .prove import ProveResult, prove

__all__ = ["ProofBundle", "ProveResult", "load_bundle", "prove"]
