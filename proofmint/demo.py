"""``proofmint demo``: the zoo's generative model, from training to a verified on-chain asset."""

from __future__ import annotations

import time
from pathlib import Path

from proofmint import progress
from proofmint.circuits.compile import compile as compile_model
from proofmint.models import export
from proofmint.prover import prove
from proofmint.verifier import asset, evm, verify


def demo(out: str | Path = "demo-out", workspace: str | Path | None = None) -> dict:
    """export generator -> compile -> prove -> verify -> deploy -> mint -> verify-asset."""
    out = Path(out)
    ws = workspace or out / ".proofmint"
    steps: list[dict] = []

    def timed(name: str, fn):
        t = time.perf_counter()
        with progress.step(name):
            result = fn()
        steps.append({"step": name, "seconds": round(time.perf_counter() - t, 2)})
        return result

    exp = timed("export generator", lambda: export("generator", out / "model"))
    comp = timed("compile", lambda: compile_model(exp.onnx, workspace=ws))
    pr = timed("prove", lambda: prove(comp.circuit_id, exp.input, out / "proof.json", workspace=ws))
    ver = timed("verify (local)", lambda: verify(pr.bundles[0], workspace=ws))
    dep = timed("deploy", lambda: evm.deploy(comp.circuit_id, workspace=ws))
    steps[-1]["gas"] = dep.gas
    minted = timed("mint", lambda: asset.mint(pr.bundles[0], workspace=ws))
    steps[-1]["gas"] = minted.gas_used
    verdict = timed("verify-asset", lambda: asset.verify_asset(minted.token_id, workspace=ws))
    return {"steps": steps, "circuit_id": comp.circuit_id, "logrows": comp.package.logrows,
            "proof": pr.bundles[0], "local_verify": ver.valid, "token_id": minted.token_id,
            "token": dep.token, "verifier": dep.verifier, "verdict": verdict.to_dict(),
            "srs_warning": comp.srs_warning}
