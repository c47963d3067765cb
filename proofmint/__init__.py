"""proofmint: verifiable AI inference as provable on-chain assets.

The public API mirrors the CLI: one function per command, same names and options
(``proofmint.compile`` is ``proofmint compile``, ``proofmint.chain_up`` is ``proofmint chain up``),
and the typed results they return. Names load on first use, so ``import proofmint`` (and the
CLI's start) stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AssetVerdict": "proofmint.verifier",
    "BenchResult": "proofmint.benchmarks",
    "ChainStatus": "proofmint.verifier",
    "CarExport": "proofmint.verifier",
    "CircuitPackage": "proofmint.circuits",
    "CompileResult": "proofmint.circuits",
    "DemoResult": "proofmint.demo_flow",
    "DeployResult": "proofmint.verifier",
    "License": "proofmint.verifier",
    "ExportResult": "proofmint.models",
    "InstanceLayout": "proofmint.encoding",
    "JobView": "proofmint.verifier.node.client",
    "MintResult": "proofmint.verifier",
    "ProofBundle": "proofmint.prover",
    "ProofmintError": "proofmint.errors",
    "ProveResult": "proofmint.prover",
    "TokenView": "proofmint.verifier",
    "Tool": "proofmint.verifier",
    "VerifyResult": "proofmint.verifier",
    "Visibility": "proofmint.encoding",
    "ZooModel": "proofmint.models",
    "bench": "proofmint.benchmarks",
    "chain_down": "proofmint.api",
    "chain_status": "proofmint.api",
    "chain_up": "proofmint.api",
    "compile": "proofmint.api",
    "demo": "proofmint.demo_flow",
    "deploy": "proofmint.api",
    "doctor": "proofmint.api",
    "export_car": "proofmint.api",
    "gateway": "proofmint.api",
    "jobs_status": "proofmint.api",
    "jobs_submit": "proofmint.api",
    "jobs_wait": "proofmint.api",
    "mint": "proofmint.api",
    "models_export": "proofmint.api",
    "models_list": "proofmint.api",
    "prove": "proofmint.api",
    "serve": "proofmint.api",
    "show": "proofmint.api",
    "verify": "proofmint.api",
    "verify_asset": "proofmint.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'proofmint' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
