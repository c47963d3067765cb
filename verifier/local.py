"""``proofmint verify``: check a proof bundle against its circuit's verifying key, locally."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proofmint import encoding, ezkl_layer
from proofmint.circuits import package as package_mod, segmented as segmented_mod
from proofmint.circuits.segmented import SegmentedPackage
from proofmint.errors import NotFoundError
from proofmint.prover.bundle import ProofBundle
from proofmint.prover.segmented import SegmentedBundle, load_any
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


def _claims_match(bundle: ProofBundle, pkg: package_mod.CircuitPackage, *, inputs: bool = True,
                  outputs: bool = True) -> tuple[bool, str]:
    """What the bundle says beside the proof must be what the proof proves (of a segmented
    model's first segment only the input, of its last only the outputs)."""
    for name in ("model_id", "visibility", "input_shape", "srs_sha256", "batch_size"):
        if getattr(bundle, name) != getattr(pkg, name):
            return False, f"bundle's {name} does not match circuit {pkg.circuit_id[:16]}"
    layout, vis = pkg.layout, pkg.visibility
    instances = bundle.instances
    if inputs and outputs and len(instances) != layout.instance_count:
        return False, (f"bundle has {len(instances)} instances; circuit {pkg.circuit_id[:16]} has "
                       f"{layout.instance_count}")
    words = encoding.uints(instances)
    if not inputs:
        pass
    elif vis.input_public:
        claimed = encoding.uints(encoding.quantize(bundle.input or [], pkg.input_scale))
        start, n = layout.input_start, layout.input_count * pkg.batch_size
        if claimed != words[start:start + n]:
            return False, "claimed input is not the proven input"
    elif vis.input_hashed and bundle.input is not None:
        if encoding.poseidon_commitment(bundle.input, pkg.input_scale) != words[layout.input_start]:
            return False, "claimed input does not hash to the proven input commitment"
    if not outputs:
        return True, "claimed input equals what the first segment proves"
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
    """Verify a proof bundle (one circuit's, or a segmented model's chain of proofs);
    ``circuit`` checks it against another circuit's key instead."""
    ws = Workspace.resolve(workspace)
    bundle = load_any(proof)
    if isinstance(bundle, SegmentedBundle):
        spkg = segmented_mod.load(ws, circuit or bundle.circuit_id)
        if spkg is None:
            raise NotFoundError(f"no segmented circuit {(circuit or bundle.circuit_id)[:16]} in {ws.root} — "
                                "compile the model there first (or pass --workspace)")
        return check_segmented(bundle, spkg, spkg.packages(ws, verify_only=True))
    return check_bundle(bundle, package_mod.load(ws, circuit or bundle.circuit_id))


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


def check_segmented(bundle: SegmentedBundle, spkg: SegmentedPackage, pkgs: list[package_mod.CircuitPackage]
                    ) -> VerifyResult:
    """Every segment's proof verifies under its own key, in the package's order; every link
    holds (segment i's output instances are segment i+1's input instances: the same hashes,
    or the same values); and the model's input and outputs are what the first and last
    segments prove."""
    checks: dict = {}

    def fail(why: str) -> VerifyResult:
        return VerifyResult(False, why, spkg.circuit_id, checks, spkg.srs_warning)

    if bundle.circuit_id != spkg.circuit_id:
        return fail(f"bundle names circuit {bundle.circuit_id[:16]}, not {spkg.circuit_id[:16]}")
    if [s.circuit_id for s in bundle.segments] != spkg.segments:
        return fail(f"the bundle's segments are not circuit {spkg.circuit_id[:16]}'s, in its order "
                    f"({len(bundle.segments)} given, {len(spkg.segments)} expected)")
    for i, (seg, pkg) in enumerate(zip(bundle.segments, pkgs)):
        ok, why = ezkl_verify(_as_bundle(seg), pkg)
        checks[f"segment {i}"] = why
        if not ok:
            return fail(f"segment {i}'s proof does not verify ({why})")
        if len(seg.instances) != _instance_count(pkg):
            return fail(f"segment {i} has {len(seg.instances)} instances; its circuit has {_instance_count(pkg)}")
    for i, (a, b) in enumerate(zip(pkgs, pkgs[1:])):
        out_a = _link_words(a, bundle.segments[i].instances, "out")
        in_b = _link_words(b, bundle.segments[i + 1].instances, "in")
        if out_a != in_b:
            return fail(f"link {i} -> {i + 1} is broken: segment {i}'s outputs are not segment {i + 1}'s inputs")
        checks[f"link {i}->{i + 1}"] = f"{len(out_a)} {'hash' if spkg.link == 'hashed' else 'value'}(s) equal"
    first = _as_bundle(bundle.segments[0], bundle, pkgs[0])
    last = _as_bundle(bundle.segments[-1], bundle, pkgs[-1])
    ok, why = _claims_match(first, pkgs[0], outputs=False)
    if ok:
        ok, why = _claims_match(last, pkgs[-1], inputs=False)
    checks["claims"] = why
    if not ok:
        return fail(why)
    return VerifyResult(True, "valid", spkg.circuit_id, checks, spkg.srs_warning)


def _instance_count(pkg: package_mod.CircuitPackage) -> int:
    """A segment's instances: ezkl hashes each input and output tensor separately."""
    vis = pkg.visibility
    n_in, n_out = len(pkg.input_sizes), len(pkg.output_shapes)
    count = n_in if vis.input_hashed else sum(pkg.input_sizes) if vis.input_public else 0
    return count + (n_out if vis.output_hashed else sum(int(np.prod(s)) for s in pkg.output_shapes))


def _link_words(pkg: package_mod.CircuitPackage, instances: list[str], side: str) -> list[int]:
    """A segment's instances that carry its inputs (``in``) or outputs (``out``)."""
    vis = pkg.visibility
    n_in = len(pkg.input_sizes) if vis.input_hashed else sum(pkg.input_sizes) if vis.input_public else 0
    words = encoding.uints(instances)
    return words[:n_in] if side == "in" else words[n_in:]


def _as_bundle(seg, whole=None, pkg=None) -> ProofBundle:
    """A segment's proof as a ProofBundle: to verify it, and for the first and last segment
    to check the model's claimed input and outputs against it."""
    return ProofBundle(
        circuit_id=seg.circuit_id, model_id=pkg.model_id if pkg else "", srs_kind="",
        srs_sha256=pkg.srs_sha256 if pkg else "", visibility=pkg.visibility if pkg else encoding.Visibility(),
        input_shape=pkg.input_shape if pkg else [], input=whole.input if whole else None,
        outputs=whole.outputs if whole else [], reference_outputs=[], max_abs_diff=0.0, argmax_agrees=None,
        ezkl_proof=seg.ezkl_proof)
