"""Verifier: local proof checks, and (on-chain) the EVM verifier, chain and asset clients."""

from .local import VerifyResult, verify

__all__ = ["VerifyResult", "verify"]
