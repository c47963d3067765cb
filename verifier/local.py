"""``proofmint verify``: check a proof bundle against its circuit's verifying key, locally."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proofmint import encoding, ezkl_layer
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


def _ezkl_verify_bytes(proof: dict, proof_bytes: list, pkg: package_mod.CircuitPackage,
                       workdir: Path) -> tuple[bool, str]:
    proof = dict(proof, proof=proof_bytes)
    try:
        # ezkl reads the byte list; rebuild hex_proof so the two can never disagree.
        proof["hex_proof"] = "0x" + bytes(proof_bytes).hex()
    except (TypeError, ValueError):
        return False, "proof bytes are malformed (not a list of bytes)"
    path = workdir / "proof.json"
    path.write_text(json.dumps(proof))
    return ezkl_layer.verify(path, pkg.settings, pkg.vk, pkg.srs)


def ezkl_verify(bundle: ProofBundle, pkg: package_mod.CircuitPackage) -> tuple[bool, str]:
    """The cryptographic check: ezkl.verify of the bundle's proof and instances.

    ezkl's verifier ignores bytes after the proof (the Solidity verifiers check the exact
    length), so a proof is accepted only if its last byte is part of it: with that byte
    changed it must no longer verify. (Truncating instead would not do: ezkl zero-fills a
    short read, so a proof ending in 0x00 would still verify without its last byte.)
    """
    raw = bundle.ezkl_proof.get("proof")
    with tempfile.TemporaryDirectory(prefix="proofmint-verify-") as d:
        ok, reason = _ezkl_verify_bytes(bundle.ezkl_proof, raw, pkg, Path(d))
        if ok and _ezkl_verify_bytes(bundle.ezkl_proof, raw[:-1] + [raw[-1] ^ 0x01], pkg, Path(d))[0]:
            return False, "proof has trailing bytes after the proof (not canonical)"
    return ok, reason


def _claims_match(bundle: ProofBundle, pkg: package_mod.CircuitPackage) -> tuple[bool, str]:
    """What the bundle says beside the proof must be what the proof proves."""
    for name in ("model_id", "visibility", "input_shape", "srs_sha256", "batch_size"):
        if getattr(bundle, name) != getattr(pkg, name):
            return False, f"bundle's {name} does not match circuit {pkg.circuit_id[:16]}"
    layout, vis = pkg.layout, pkg.visibility
    instances = bundle.instances
    if len(instances) != layout.instance_count:
        return False, (f"bundle has {len(instances)} instances; circuit {pkg.circuit_id[:16]} has "
                       f"{layout.instance_count}")
    words = encoding.uints(instances)
    if vis.input_public:
        claimed = encoding.uints(encoding.quantize(bundle.input or [], pkg.input_scale))
        start, n = layout.input_start, layout.input_count * pkg.batch_size
        if claimed != words[start:start + n]:
            return False, "claimed input is not the proven input"
    elif vis.input_hashed and bundle.input is not None:
        if encoding.poseidon_commitment(bundle.input, pkg.input_scale) != words[layout.input_start]:
            return False, "claimed input does not hash to the proven input commitment"
    if len(bundle.outputs) != len(pkg.output_shapes):
        return False, (f"bundle claims {len(bundle.outputs)} output tensors, circuit "
                       f"{pkg.circuit_id[:16]} has {len(pkg.output_shapes)}")
    scales = [s for s, o in zip(pkg.output_scales, bundle.outputs) for _ in o]
    claimed_out = [v for o in bundle.outputs for v in o]
    if vis.output_hashed:
        # The proof carries only the outputs' Poseidon hash: the claimed outputs must hash to it.
        felts = [f for v, s in zip(claimed_out, scales) for f in encoding.output_felts([v], s)]
        if encoding.uints(ezkl_layer.poseidon(felts)[:1]) != words[layout.output_start:layout.output_start + 1]:
            return False, "claimed outputs do not hash to the proven output commitment"
    else:
        felts = instances[layout.output_start:]
        decoded = np.array([ezkl_layer.felt_to_float(f, s) for f, s in zip(felts, scales)])
        claimed = np.asarray(claimed_out, dtype=np.float64)
        if decoded.shape != claimed.shape:
            return False, f"bundle claims {claimed.size} outputs, the proof has {decoded.size}"
        if not np.allclose(decoded, claimed, rtol=0, atol=1e-9):
            i = int(np.argmax(np.abs(decoded - claimed)))
            return False, (f"claimed output {i} is {claimed[i]:g} but the proven instance "
                           f"decodes to {decoded[i]:g}")
    return True, "claimed model, input and outputs equal what the proof proves"


def verify(proof: str | Path, *, circuit: str | None = None,
           workspace: str | Path | Workspace | None = None) -> VerifyResult:
    """Verify a proof bundle; ``circuit`` checks it against another circuit's key instead."""
    bundle = load_bundle(proof)
    return check_bundle(bundle, package_mod.load(Workspace.resolve(workspace), circuit or bundle.circuit_id))


def check_bundle(bundle: ProofBundle, pkg: package_mod.CircuitPackage) -> VerifyResult:
    """The proof verifies under the package's key, and everything the bundle claims beside it
    (model, input, outputs) is what the proof proves."""
    checks: dict = {}
    ok, reason = ezkl_verify(bundle, pkg)
    checks["proof"] = reason
    if ok and bundle.circuit_id != pkg.circuit_id:
        ok, reason = False, f"bundle names circuit {bundle.circuit_id[:16]}, not {pkg.circuit_id[:16]}"
    if ok:
        ok, reason = _claims_match(bundle, pkg)
        checks["claims"] = reason
    return VerifyResult(ok, reason if not ok else "valid", pkg.circuit_id, checks, pkg.srs_warning)
