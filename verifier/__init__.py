"""Verifier: local proof checks, the EVM verifier and our contracts on a chain, the asset client.

By job: ``local`` (verify a bundle), ``anvil`` (the workspace's embedded chain; ``keeper``, the
process that owns its anvil), ``client`` (a connected chain), ``keys`` (the signing account),
``toolchain`` (solc, anvil, node);
``artifacts`` (compiled contracts and verifiers), ``deploy``, ``mint``, ``records`` (what is
on-chain, typed), ``inspect`` (show, verify-asset); the asset's content: ``content`` (CIDs, the
content store, fetching by CID), ``render`` (outputs as images and cards), ``asset`` (what is
published at deploy and mint, and checked back), ``gateway`` (a read-only HTTP gateway),
``archive`` (export-car).
"""

from .anvil import Anvil, ChainStatus, chain_down, chain_status, chain_up
from .archive import CarExport
from .deploy import DeployResult, License
from .inspect import AssetVerdict, TokenView, show, verify_asset
from .local import VerifyResult, verify
from .mint import MintResult
from .toolchain import Tool, doctor

# `deploy` and `mint` are modules here; their functions are proofmint.deploy and proofmint.mint.
__all__ = ["Anvil", "AssetVerdict", "CarExport", "ChainStatus", "DeployResult", "License", "MintResult",
           "TokenView", "Tool",
           "VerifyResult", "chain_down", "chain_status", "chain_up", "doctor", "show", "verify",
           "verify_asset"]
