"""``proofmint demo``: the zoo's generative model, from training to a verified on-chain asset."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from proofmint import api, progress
from proofmint.store import Workspace


@dataclass
class DemoResult:
    steps: list[dict]
    circuit_id: str
    logrows: int
    proof: str
    local_verify: bool
    token_id: int
    token: str
    verifier: str
    verdict: dict = field(default_factory=dict)
    srs_warning: str | None = None
    image: str = ""  # the token's rendered image, copied out of the content store
    token_uri: str = ""
    metadata: dict = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # to look at the token again

    @property
    def valid(self) -> bool:
        return bool(self.verdict.get("valid"))

    def to_dict(self) -> dict:
        return asdict(self)


def demo(*, out: str | Path = "demo-out", workspace: str | Path | Workspace | None = None) -> DemoResult:
    """export generator -> compile -> prove -> verify -> deploy -> mint -> verify-asset."""
    out = Path(out)
    ws = Workspace.resolve(workspace or out / ".proofmint")
    steps: list[dict] = []

    def timed(name: str, fn):
        t = time.perf_counter()
        with progress.step(name):
            result = fn()
        steps.append({"step": name, "seconds": round(time.perf_counter() - t, 2)})
        return result

    exp = timed("export generator", lambda: api.models_export("generator", out=out / "model"))
    comp = timed("compile", lambda: api.compile(exp.onnx, workspace=ws))
    pr = timed("prove", lambda: api.prove(comp.circuit_id, input=exp.input, out=out / "proof.json",
                                          workspace=ws))
    ver = timed("verify (local)", lambda: api.verify(pr.bundles[0], workspace=ws))
    dep = timed("deploy", lambda: api.deploy(comp.circuit_id, training_data=exp.training, workspace=ws))
    steps[-1]["gas"] = dep.gas
    minted = timed("mint", lambda: api.mint(pr.bundles[0], workspace=ws))
    steps[-1]["gas"] = minted.gas_used
    verdict = timed("verify-asset", lambda: api.verify_asset(minted.token_id, workspace=ws))
    shown = api.show(minted.token_id, workspace=ws)
    image = out / f"token-{minted.token_id}.png"
    shutil.copyfile(minted.images[0], image)
    again = f"--workspace {ws.root}"
    commands = [f"proofmint chain up {again}",
                f"proofmint show {minted.token_id} {again}",
                f"proofmint verify-asset {minted.token_id} {again}",
                f"proofmint gateway {again}   # then open http://127.0.0.1:8080/ipfs/"
                f"{minted.token_uris[0].removeprefix('ipfs://')}",
                f"proofmint export-car {minted.token_id} --out {out / 'token.car'} {again}"]
    return DemoResult(steps, comp.circuit_id, comp.package.logrows, pr.bundles[0], ver.valid,
                      minted.token_id, dep.token, dep.verifier, verdict.to_dict(), comp.srs_warning,
                      str(image), shown.token_uri, shown.metadata, commands)
