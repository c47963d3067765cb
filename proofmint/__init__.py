"""proofmint: verifiable AI inference as provable on-chain assets.

The public API mirrors the CLI: one function per command, same names and arguments.
"""

from .circuits import CircuitPackage, CompileResult, compile
from .errors import ProofmintError
from .prover import ProofBundle, ProveResult, prove
from .verifier import VerifyResult, verify

__all__ = [
    "CircuitPackage",
    "CompileResult",
    "ProofBundle",
    "ProofmintError",
    "ProveResult",
    "VerifyResult",
    "compile",
    "prove",
    "verify",
]
