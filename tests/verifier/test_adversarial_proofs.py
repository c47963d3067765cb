"""Systematic proof mutations: every one must be rejected locally and by the on-chain verifier.

Default run: a fast subset. ``pytest --large`` (or PROOFMINT_LARGE=1): >= 1,000 mutations.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import proofmint
from proofmint import ezkl_layer
from proofmint.circuits import package
from proofmint.errors import TransactionRevertedError
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier import evm as artifacts
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.deploy import vka_for

from .chain.test_onchain import model_id

FIELD_P = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001


def _felt_plus_one(felt: str) -> str:
    value = int.from_bytes(bytes.fromhex(felt), "little")
    return ((value + 1) % FIELD_P).to_bytes(32, "little").hex()


def mutations(proof: list[int], instances: list[list[str]], large: bool, seed: int = 0):
    """(name, proof bytes, instances) for each mutation of a valid proof."""
    rng = random.Random(seed)
    flat = [f for g in instances for f in g]

    def regroup(values):
        out, i = [], 0
        for g in instances:
            out.append(values[i:i + len(g)])
            i += len(g)
        return out

    words = range(0, len(proof) // 32) if large else range(0, len(proof) // 32, 12)
    for w in words:
        p = list(proof)
        p[w * 32 + 31] ^= 0x01
        yield f"word {w} flipped", p, instances
    for k in range(400 if large else 8):
        p = list(proof)
        i = rng.randrange(len(p))
        p[i] ^= 1 << rng.randrange(8)
        yield f"bit flip {k} at byte {i}", p, instances
    for n in (1, 32, len(proof) // 2, len(proof) - 1):
        yield f"truncated by {n}", proof[:-n], instances
    for name, tail in (("1 byte", [7]), ("32 zero bytes", [0] * 32), ("itself", list(proof))):
        yield f"extended by {name}", proof + tail, instances
    idx = range(len(flat)) if large else sorted({0, 1, len(flat) // 2, len(flat) - 1})
    for i in idx:
        changed = list(flat)
        changed[i] = _felt_plus_one(changed[i])
        yield f"instance {i} + 1", proof, regroup(changed)
    pairs = [(i, j) for i in range(len(flat)) for j in range(i + 1, len(flat)) if flat[i] != flat[j]]
    for i, j in rng.sample(pairs, min(len(pairs), 40 if large else 3)):
        swapped = list(flat)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        yield f"instances {i} and {j} swapped", proof, regroup(swapped)
    if len(set(flat)) > 1:
        yield "instances reversed", proof, regroup(flat[::-1])
    yield "last instance dropped", proof, instances[:-1] + [instances[-1][:-1]]
    yield "extra instance", proof, instances[:-1] + [instances[-1] + [instances[-1][-1]]]


def _on_chain_accepts(check, mid: bytes, proof: list[int], instances: list[list[str]], vka) -> bool:
    try:
        uints = [ezkl_layer.felt_to_uint(f) for g in instances for f in g]
    except Exception:
        return False  # not even encodable as field elements
    return check(mid, bytes(proof), uints, vka).call()


def _run(name: str, bundle_path: str, ws: Path, anvil, deployed_entry, large: bool, tmp_path: Path):
    bundle = json.loads(Path(bundle_path).read_text())
    pkg_id = bundle["circuit_id"]
    built = artifacts.build_contracts(Workspace(ws))
    tried = rejected_local = rejected_chain = 0
    accepted = []
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry = c.w3.eth.contract(address=deployed_entry.registry, abi=built["ModelRegistry"]["abi"])
        check = registry.functions.checkInference
        vka = vka_for(package.load(Workspace(ws), pkg_id), {"kind": deployed_entry.verifier_kind})
        mid = model_id(ws, pkg_id)
        assert _on_chain_accepts(check, mid, bundle["ezkl_proof"]["proof"],
                                 bundle["ezkl_proof"]["instances"], vka), "the unmutated proof must verify"
        target = tmp_path / "mutated.json"
        for label, proof, instances in mutations(bundle["ezkl_proof"]["proof"],
                                                 bundle["ezkl_proof"]["instances"], large):
            tried += 1
            mutated = json.loads(json.dumps(bundle))
            mutated["ezkl_proof"]["proof"], mutated["ezkl_proof"]["instances"] = proof, instances
            target.write_text(json.dumps(mutated))
            local_ok = proofmint.verify(target, workspace=ws).valid
            chain_ok = _on_chain_accepts(check, mid, proof, instances, vka)
            rejected_local += not local_ok
            rejected_chain += not chain_ok
            if local_ok or chain_ok:
                accepted.append((label, local_ok, chain_ok))
    print(f"\nMUTATIONS {name}: {tried} tried, {rejected_local} rejected locally, "
          f"{rejected_chain} rejected on-chain")
    assert not accepted, f"forgeries accepted: {accepted[:5]}"
    return tried


def test_every_mutation_of_the_cnn_proof_is_rejected(deployed, proofs, ws, anvil, large, tmp_path):
    tried = _run("lenet (public input)", proofs["lenet"], ws, anvil, deployed["lenet"], large, tmp_path)
    assert tried >= (600 if large else 30)


def test_every_mutation_of_the_hashed_input_proof_is_rejected(deployed, hashed_mlp, ws, anvil, large,
                                                              tmp_path):
    tried = _run("mlp (hashed input)", hashed_mlp[1], ws, anvil, deployed["mlp-hashed"], large, tmp_path)
    assert tried >= (450 if large else 25)


def test_mutated_proofs_cannot_be_minted(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Each mutation reaches the chain's verifier and reverts there: the proof is of an input
    never minted (the fixture's own proof may be minted by then: a mutation of it keeps its
    instances, so it would be refused earlier, as an inference already minted)."""
    samples = json.loads(Path(zoo["lenet"].calibration).read_text())["input_data"][0]
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps({"input_data": [samples[5 * 64:6 * 64]]}))
    proof = proofmint.prove(circuits["lenet"].circuit_id, input=fresh, out=tmp_path / "fresh-proof.json",
                            workspace=ws).bundles[0]
    bundle = json.loads(Path(proof).read_text())
    picks = [m for m in mutations(bundle["ezkl_proof"]["proof"], bundle["ezkl_proof"]["instances"], False)
             if m[0] in {"word 0 flipped", "truncated by 1", "extended by 1 byte", "instance 0 + 1"}]
    assert len(picks) == 4
    for label, proof, instances in picks:
        mutated = json.loads(json.dumps(bundle))
        mutated["ezkl_proof"]["proof"], mutated["ezkl_proof"]["instances"] = proof, instances
        p = tmp_path / "m.json"
        p.write_text(json.dumps(mutated))
        with pytest.raises(TransactionRevertedError):
            proofmint.mint(p, rpc_url=anvil.url, workspace=ws)


def test_proof_under_another_circuits_key_and_another_srs(zoo, circuits, proofs, deployed, ws, anvil, tmp_path):
    """A proof checked against another circuit's vk, and a proof made with a different SRS."""
    lenet, mlp = circuits["lenet"].circuit_id, circuits["mlp"].circuit_id
    assert not proofmint.verify(proofs["mlp"], circuit=lenet, workspace=ws).valid
    other_srs = tmp_path / "other.srs"
    ezkl_layer.gen_srs(other_srs, circuits["mlp"].package.logrows)
    foreign = proofmint.compile(zoo["mlp"].onnx, srs=other_srs, workspace=ws)
    assert foreign.package.srs_kind == "user" and foreign.circuit_id != mlp
    fb = proofmint.prove(foreign.circuit_id, input=zoo["mlp"].input, out=tmp_path / "foreign.json",
                         workspace=ws).bundles[0]
    assert proofmint.verify(fb, workspace=ws).valid  # valid under its own SRS and keys
    assert not proofmint.verify(fb, circuit=mlp, workspace=ws).valid
    built = artifacts.build_contracts(Workspace(ws))
    b = load_bundle(fb)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry = c.w3.eth.contract(address=deployed["mlp"].registry, abi=built["ModelRegistry"]["abi"])
        assert not _on_chain_accepts(registry.functions.checkInference, model_id(ws, mlp), b.ezkl_proof["proof"],
                                     b.ezkl_proof["instances"], [])
        assert not _on_chain_accepts(registry.functions.checkInference, model_id(ws, lenet),
                                     load_bundle(proofs["mlp"]).ezkl_proof["proof"],
                                     load_bundle(proofs["mlp"]).ezkl_proof["instances"], [])
