"""The public Python API: one function per CLI command, with the command's name and options.

The stage packages hold the implementations; this facade adds only what spans stages (``prove``
of an ONNX file compiles it first). Arguments after the first are keyword-only, as on the
command line, where they are options.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from proofmint.circuits import compiler as _compiler
from proofmint.verifier.node.client import jobs_status, jobs_submit, jobs_wait
from proofmint.verifier.node.server import serve
from proofmint.prover import ProveResult
from proofmint.prover import prove as _prove
from proofmint.store import Workspace
from proofmint.verifier import chain_down, chain_status, chain_up, doctor, show, verify, verify_asset
from proofmint.verifier.asset.archive import export_car
from proofmint.verifier.chain.deploy import deploy
from proofmint.verifier.content.gateway import gateway
from proofmint.verifier.chain.mint import mint

if TYPE_CHECKING:  # the zoo needs torch, which nothing else here does: loaded when used
    from proofmint.models import ExportResult, ZooModel

compile = _compiler.compile  # noqa: A001 - the `compile` command's twin (call it as proofmint.compile)


def prove(circuit: str | Path, *, input: str | Path, out: str | Path | None = None,
          workspace: str | Path | Workspace | None = None, threads: int | None = None, workers: int = 1,
          backend: str = "local", address: str | None = None, device: str = "cpu") -> ProveResult:
    """Prove every input in ``input`` against ``circuit``: a circuit id (or 8+ character prefix),
    or an ONNX file, compiled first with default options (a cache hit when it was)."""
    if str(circuit).endswith(".onnx") or Path(circuit).is_file():
        circuit = compile(circuit, workspace=workspace).package
    return _prove(circuit, input=input, out=out, workspace=workspace, threads=threads, workers=workers,
                  backend=backend, address=address, device=device)


def models_list() -> list[ZooModel]:
    """The zoo's models (``proofmint models list``)."""
    from proofmint.models import list_models

    return list_models()


def models_export(name: str, *, out: str | Path, size: str | None = None) -> ExportResult:
    """Train a zoo model and export it (``proofmint models export NAME --out DIR [--size S]``)."""
    from proofmint.models import export

    return export(name, out, size=size)


__all__ = ["chain_down", "chain_status", "chain_up", "compile", "deploy", "doctor", "export_car", "gateway",
           "jobs_status", "jobs_submit", "jobs_wait", "mint", "models_export", "models_list", "prove", "serve",
           "show", "verify", "verify_asset"]
