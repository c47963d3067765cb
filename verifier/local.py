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


def _ezkl_verify_bytes(proof: dict, proof_bytes: list, pkg: package_mod.CircuitPackage,
                      workdir: Path) -> tuple[bool, str]:
    import ezkl

    proof = dict(proof, proof=proof_bytes)
    try:
        # ezkl reads the byte list; rebuild hex_proof so the two can never disagree.
        proof["hex_proof"] = "0x" + bytes(proof_bytes).hex()
    except (TypeError, ValueError):
        return False, "proof bytes are malformed (not a list of bytes)"
    path = workdir / "proof.json"
    path.write_text(json.dumps(proof))
    try:
        ok = ezkl.verify(str(path), str(pkg.settings), str(pkg.vk), srs_path=pkg.srs_path)
    except Exception as exc:  # ezkl raises on malformed proofs
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return False, f"ezkl rejected the proof: {first}"
    return bool(ok), "proof verifies" if ok else "proof does not verify"


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


def _uint(felt: str) -> int:
    import ezkl

    return int(ezkl.felt_to_big_endian(felt), 16)


def _claims_match(bundle: ProofBundle, pkg: package_mod.CircuitPackage) -> tuple[bool, str]:
    """What the bundle says beside the proof must be what the proof proves."""
    import ezkl

    for name in ("model_id", "visibility", "input_shape", "srs_sha256", "batch_size"):
        if getattr(bundle, name) != getattr(pkg, name):
            return False, f"bundle's {name} does not match circuit {pkg.circuit_id[:16]}"
    layout = pkg.instance_layout()
    instances = bundle.instances
    if len(instances) != pkg.instance_count():
        return False, (f"bundle has {len(instances)} instances; circuit {pkg.circuit_id[:16]} has "
                       f"{pkg.instance_count()}")
    if pkg.visibility["input"] == "public":
        claimed = [_uint(ezkl.float_to_felt(float(v), pkg.input_scale, ezkl.PyInputType.F32))
                   for v in bundle.input or []]
        start, n = layout["inputStart"], layout["inputCount"] * pkg.batch_size
        if claimed != [_uint(f) for f in instances[start:start + n]]:
            return False, "claimed input is not the proven input"
    elif pkg.visibility["input"] == "hashed" and bundle.input is not None:
        felts = [ezkl.float_to_felt(float(v), pkg.input_scale, ezkl.PyInputType.F32) for v in bundle.input]
        if _uint(ezkl.poseidon_hash(felts)[0]) != _uint(instances[layout["inputStart"]]):
            return False, "claimed input does not hash to the proven input commitment"
    if len(bundle.outputs) != len(pkg.output_shapes):
        return False, (f"bundle claims {len(bundle.outputs)} output tensors, circuit "
                       f"{pkg.circuit_id[:16]} has {len(pkg.output_shapes)}")
    if pkg.visibility["output"] == "hashed":
        # The proof carries only the outputs' Poseidon hash: the claimed outputs must hash to it.
        scales = [s for s, o in zip(pkg.output_scales, bundle.outputs) for _ in o]
        felts = [ezkl.float_to_felt(float(v), s, ezkl.PyInputType.F32)
                 for v, s in zip((v for o in bundle.outputs for v in o), scales)]
        proven = instances[layout["outputStart"]:layout["outputStart"] + len(pkg.output_shapes)]
        hashes = [_uint(h) for h in ezkl.poseidon_hash(felts)] if len(pkg.output_shapes) == 1 else None
        if hashes is None or [_uint(f) for f in proven] != hashes[:len(proven)]:
            return False, "claimed outputs do not hash to the proven output commitment"
    if pkg.visibility["output"] == "public":
        scales = [s for s, o in zip(pkg.output_scales, bundle.outputs) for _ in o]
        felts = instances[layout["outputStart"]:]
        decoded = np.array([ezkl.felt_to_float(f, s) for f, s in zip(felts, scales)])
        claimed_out = np.concatenate([np.asarray(o, dtype=np.float64) for o in bundle.outputs])
        if decoded.shape != claimed_out.shape:
            return False, f"bundle claims {claimed_out.size} outputs, the proof has {decoded.size}"
        if not np.allclose(decoded, claimed_out, rtol=0, atol=1e-9):
            i = int(np.argmax(np.abs(decoded - claimed_out)))
            return False, (f"claimed output {i} is {claimed_out[i]:g} but the proven instance "
                           f"decodes to {decoded[i]:g}")
    return True, "claimed model, input and outputs equal what the proof proves"


def verify(proof: str | Path, circuit: str | None = None,
           workspace: str | Path | None = None) -> VerifyResult:
    """Verify a proof bundle; ``circuit`` checks it against another circuit's key instead."""
    bundle = load_bundle(proof)
    pkg = package_mod.load(Workspace.resolve(workspace), circuit or bundle.circuit_id)
    warning = "development SRS (not secure)" if pkg.srs_kind == "development" else None
    checks: dict = {}
    ok, reason = ezkl_verify(bundle, pkg)
    checks["proof"] = reason
    if ok and bundle.circuit_id != pkg.circuit_id:
        ok, reason = False, f"bundle names circuit {bundle.circuit_id[:16]}, not {pkg.circuit_id[:16]}"
    if ok:
        ok, reason = _claims_match(bundle, pkg)
        checks["claims"] = reason
    return VerifyResult(ok, reason if not ok else "valid", pkg.circuit_id, checks, warning)
