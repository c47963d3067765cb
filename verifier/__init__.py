"""Verifier: everything after the proof, by job, in the order the flow reaches it.

- ``local`` (verify a bundle on this machine), ``evm`` (ezkl's Solidity verifiers and our
  compiled contracts), ``toolchain`` (solc, anvil, node, and the one runner of the Node scripts);
- ``content/``: the asset's content — ``store`` (IPFS CIDs, the content store, fetching by CID
  and re-hashing), ``render`` (outputs as images and cards), ``publish`` (what deploy and mint
  publish: the ERC-7007 metadata, and its checks), ``segmented`` (a segmented model's chain of
  proofs as one token's statement, and its published segments), ``gateway`` (a read-only HTTP
  gateway);
- ``chain/``: the chain — ``anvil`` and ``keeper`` (the workspace's embedded chain and the
  process that owns it), ``client`` (a connected chain, web3's errors mapped), ``keys`` (the
  signing account), ``records`` (what is on-chain, typed), ``deploy`` (verifier + registration),
  ``mint`` (commit, reveal: where a token is minted);
- ``asset/``: a minted token read back — ``inspect`` (show, verify-asset), ``archive``
  (export-car);
- ``node/``: the prover node (``proofmint serve``): queue, workers, minting, API, explorer.

Each job imports only the core, the stages before verification, and the jobs above it here
(``tests/test_structure.py``).
"""

from proofmint.verifier.asset.archive import CarExport
from proofmint.verifier.asset.inspect import AssetVerdict, TokenView, show, verify_asset
from proofmint.verifier.chain.anvil import Anvil, ChainStatus, chain_down, chain_status, chain_up
from proofmint.verifier.chain.deploy import DeployResult, License
from proofmint.verifier.chain.mint import MintResult
from proofmint.verifier.local import VerifyResult, verify
from proofmint.verifier.toolchain import Tool, doctor

__all__ = ["Anvil", "AssetVerdict", "CarExport", "ChainStatus", "DeployResult", "License", "MintResult",
           "TokenView", "Tool",
           "VerifyResult", "chain_down", "chain_status", "chain_up", "doctor", "show", "verify",
           "verify_asset"]
