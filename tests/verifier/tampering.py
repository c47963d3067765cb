"""One shared behaviour: a proof bundle that was tampered with is rejected, locally and on-chain.

Tampering is done to the bytes each verifier actually reads: the proof bytes and the public
instances (ezkl's and the Solidity verifier's inputs), and the claims beside them in the bundle
(the input and outputs that `verify` checks against the instances).
"""

from __future__ import annotations

import json
from pathlib import Path

import proofmint
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ProofmintError
from proofmint.prover import load_bundle
from proofmint.verifier.evm import verifier_artifact
from proofmint.verifier.chain.client import connect

FIELD_P = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001


def felt_plus_one(felt: str) -> str:
    value = int.from_bytes(bytes.fromhex(felt), "little")
    return ((value + 1) % FIELD_P).to_bytes(32, "little").hex()


def tampered(bundle_path: str | Path) -> dict[str, dict]:
    """name -> an edited copy of the bundle's JSON, one edit each."""
    data = json.loads(Path(bundle_path).read_text())
    out: dict[str, dict] = {}

    def edit(name: str, fn) -> None:
        copy = json.loads(json.dumps(data))
        fn(copy)
        out[name] = copy

    proof_len = len(data["ezkl_proof"]["proof"])
    for where in (0, proof_len // 2, proof_len - 1):
        edit(f"proof byte {where}", lambda d, i=where: d["ezkl_proof"]["proof"].__setitem__(i, d["ezkl_proof"]["proof"][i] ^ 1))
    edit("proof truncated", lambda d: d["ezkl_proof"].__setitem__("proof", d["ezkl_proof"]["proof"][:-32]))
    edit("proof extended", lambda d: d["ezkl_proof"]["proof"].extend([0] * 32))
    flat = [(g, i) for g, group in enumerate(data["ezkl_proof"]["instances"]) for i in range(len(group))]
    for g, i in (flat[0], flat[-1]):
        edit(f"instance {g}.{i} + 1", lambda d, g=g, i=i: d["ezkl_proof"]["instances"][g].__setitem__(
            i, felt_plus_one(d["ezkl_proof"]["instances"][g][i])))
    edit("instance dropped", lambda d: d["ezkl_proof"]["instances"][-1].pop())
    if data["input"] is not None:
        edit("claimed input", lambda d: d["input"].__setitem__(0, d["input"][0] + 0.5))
    edit("claimed output", lambda d: d["outputs"][0].__setitem__(0, d["outputs"][0][0] + 0.5))
    return out


def assert_rejects_tampering(bundle_path: str | Path, pkg: CircuitPackage, ws: Path, rpc_url: str,
                             tmp: Path) -> list[str]:
    """The bundle verifies, and each tampered copy is rejected by ``proofmint verify`` and, where
    the edit reaches the proof or instances, by the circuit's EVM verifier. Returns the edits tried."""
    assert proofmint.verify(bundle_path, workspace=ws).valid
    deployment = proofmint.deploy(pkg.circuit_id, rpc_url=rpc_url, workspace=ws)
    art = verifier_artifact(pkg, reusable=deployment.verifier_kind == "reusable")
    tried = []
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        verifier = c.w3.eth.contract(address=deployment.verifier, abi=art["abi"])

        def onchain(bundle_file: Path) -> bool:
            b = load_bundle(bundle_file)
            args = [b.proof_bytes, b.instance_words]
            if deployment.verifier_kind == "reusable":
                args.append([bytes.fromhex(w[2:]) for w in art["vka"]])
            try:
                result = verifier.functions.verifyProof(*args).call()
            except Exception:  # ezkl's verifiers revert on a bad proof, with no reason data
                return False
            return bool(result[0] if isinstance(result, (list, tuple)) else result)

        assert onchain(Path(bundle_path)), "the untampered proof must verify on-chain"
        for name, data in tampered(bundle_path).items():
            f = tmp / f"tampered-{len(tried)}.json"
            f.write_text(json.dumps(data))
            try:
                local_ok = proofmint.verify(f, workspace=ws).valid
            except ProofmintError:
                local_ok = False  # refused as malformed: a rejection
            assert not local_ok, f"{name}: accepted by proofmint verify"
            if name.startswith(("proof", "instance")):
                assert not onchain(f), f"{name}: accepted by the EVM verifier"
            tried.append(name)
    return tried
