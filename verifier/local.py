"""``proofmint verify``: check a proof bundle against its circuit's verifying key, locally."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proofmint.circuits import package as package_mod
from proofmint.prover.bundle import ProofBundle, load_bundle
from proofmint.store import Workspace


@dataclass
class VerifyResult:
    valid: bool
    reason: str
    circuit_id: str
    checks: dict = field(default_factory=dict)
    srs_warning: str | None = None

    def to_dict(self) -> dict:
        return {"valid": self.valid, "reason": self.reason, "circuit_id": self.circuit_id,
                "checks": self.checks, "srs_warning": self.srs_warning}


def ezkl_verify(bundle: ProofBundle, pkg: package_mod.CircuitPackage) -> tuple[bool, str]:
    """The cryptographic check: ezkl.verify of the bundle's proof and instances."""
    import ezkl

    proof = dict(bundle.ezkl_proof)
    try:
        # ezkl reads the byte list; rebuild hex_proof so the two can never disagree.
        proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    except (TypeError, ValueError):
        return False, "proof bytes are malformed (not a list of bytes)"
    with tempfile.TemporaryDirectory(prefix="proofmint-verify-") as d:
        path = Path(d) / "proof.json"
        path.write_text(json.dumps(proof))
        try:
            ok = ezkl.verify(str(path), str(pkg.settings), str(pkg.vk), srs_path=pkg.srs_path)
        except BaseException as exc:  # ezkl raises (or panics) on malformed proofs
            if isinstance(exc, KeyboardInterrupt):
                raise
            return False, f"ezkl rejected the proof: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return bool(ok), "proof verifies" if ok else "proof does not verify"


def _claimed_outputs_match(bundle: ProofBundle, pkg: package_mod.CircuitPackage) -> tuple[bool, str]:
    """With public outputs, the decoded outputs in the bundle must be what the instances say."""
    import ezkl

    if pkg.visibility["output"] != "public":
        return True, "outputs are hashed; checked on-chain against the commitment"
    n_out = sum(len(o) for o in bundle.outputs)
    felts = bundle.instances[-n_out:] if n_out else []
    scales = [s for s, o in zip(pkg.output_scales, bundle.outputs) for _ in o]
    if len(felts) != n_out:
        return False, f"bundle claims {n_out} outputs but has {len(felts)} output instances"
    decoded = np.array([ezkl.felt_to_float(f, s) for f, s in zip(felts, scales)])
    claimed = np.concatenate([np.asarray(o, dtype=np.float64) for o in bundle.outputs])
    if not np.allclose(decoded, claimed, rtol=0, atol=1e-9):
        i = int(np.argmax(np.abs(decoded - claimed)))
        return False, (f"claimed output {i} is {claimed[i]:g} but the proven instance decodes to "
                       f"{decoded[i]:g}")
    return True, "claimed outputs equal the proven output instances"


def verify(proof: str | Path, circuit: str | None = None,
           workspace: str | Path | None = None) -> VerifyResult:
    """Verify a proof bundle; ``circuit`` checks it against another circuit's key instead."""
    bundle = load_bundle(proof)
    pkg = package_mod.load(Workspace.resolve(workspace), circuit or bundle.circuit_id)
    warning = "development SRS (not secure)" if pkg.srs_kind == "development" else None
    checks: dict = {}
    ok, reason = ezkl_verify(bundle, pkg)
    checks["proof"] = reason
    if ok:
        ok, reason = _claimed_outputs_match(bundle, pkg)
        checks["outputs"] = reason
    if ok and bundle.circuit_id != pkg.circuit_id:
        ok, reason = False, f"bundle names circuit {bundle.circuit_id[:16]}, not {pkg.circuit_id[:16]}"
    return VerifyResult(ok, reason if not ok else "valid", pkg.circuit_id, checks, warning)
