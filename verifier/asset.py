"""Provenance assets: mint a verified inference (commit, then reveal), show it, re-verify it.

The proof bundle is stored content-addressed (by the proof hash and inference id, which
the token records on-chain) *before* the mint is sent, so a minted token can always find its
bundle even if proofmint is killed before it writes the token's record.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from eth_utils import keccak
from web3.logs import DISCARD

from proofmint import progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError, NotFoundError
from proofmint.faults import failpoint
from proofmint.prover.bundle import ProofBundle, load_bundle
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_file

from . import chain as chain_mod
from . import evm
from .local import ezkl_verify


@dataclass
class MintResult:
    token_id: int  # the first token; a batch proof mints token_ids, consecutive, in one tx
    tx_hash: str
    gas_used: dict
    chain_id: int
    circuit_id: str
    input_commitment: str
    owner: str
    token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def evm_instances(bundle: ProofBundle) -> list[int]:
    import ezkl

    return [int(ezkl.felt_to_big_endian(f), 16) for f in bundle.instances]


def item_commitments(bundle: ProofBundle, pkg: CircuitPackage) -> list[bytes]:
    """Each real inference's commitment to the input the bundle *claims*, computed the way the
    token computes it from the proven instances; a bundle whose input was edited gets others."""
    import ezkl
    from eth_abi import encode

    if bundle.input is None:  # private input: the proof commits to nothing about it
        return [keccak(b"")] * bundle.count
    felts = [ezkl.float_to_felt(float(v), pkg.input_scale, ezkl.PyInputType.F32) for v in bundle.input]
    if pkg.visibility["input"] == "hashed":
        digest = int(ezkl.felt_to_big_endian(ezkl.poseidon_hash(felts)[0]), 16).to_bytes(32, "big")
        if pkg.batch_size == 1:
            return [digest]
        return [keccak(encode(["bytes32", "uint256"], [digest, i])) for i in range(bundle.count)]
    words = [int(ezkl.felt_to_big_endian(f), 16).to_bytes(32, "big") for f in felts]
    n = len(words) // pkg.batch_size
    return [keccak(b"".join(words[i * n:(i + 1) * n])) for i in range(bundle.count)]


def input_commitment(bundle: ProofBundle, pkg: CircuitPackage) -> bytes:
    """What a mint request claims: the input's commitment, or for a batch proof keccak256 of
    its real inferences' commitments."""
    items = item_commitments(bundle, pkg)
    return items[0] if pkg.batch_size == 1 else keccak(b"".join(items))


def _asset_store(ws: Workspace, proof_hash: str, inference_id: str) -> Path:
    """Where a minted bundle lives, named by what its token records on-chain: the proof hash
    and the inference id (circuit + instances). Proof bytes alone don't name a statement:
    the same bytes with other instances are another (invalid) bundle."""
    return ws.path("assets", "bundles", f"{proof_hash.removeprefix('0x')}-{inference_id.removeprefix('0x')}.json")


def _contracts(c: chain_mod.Chain, ws: Workspace):
    """The recorded registry and token on this chain, refusing records that don't fit it."""
    built = evm.build_contracts(ws)
    path = c.records("deployments.json")
    if not path.is_file():
        raise NotFoundError(f"nothing is deployed on chain {c.chain_id} — run `proofmint deploy "
                            "CIRCUIT_ID` first")
    dep = read_json(path)
    if dep.get("chain_id") != c.chain_id:
        raise ChainError(f"{path} records a deployment on chain id {dep.get('chain_id')}, but "
                         f"{c.rpc_url} is chain id {c.chain_id} — refusing to mix chains")
    if not c.w3.eth.get_code(dep["token"]) or not c.w3.eth.get_code(dep["registry"]):
        raise ChainError(f"the chain at {c.rpc_url} (chain id {c.chain_id}) has no code at the "
                         f"recorded token {dep['token']}: it is not the chain this workspace "
                         "deployed to (or it was reset) — run `proofmint deploy` again")
    token = c.w3.eth.contract(address=dep["token"], abi=built["ProvenanceToken"]["abi"])
    abi = built["ProvenanceToken"]["abi"] + built["ModelRegistry"]["abi"]
    return dep, token, abi


def mint(proof: str | Path, to: str | None = None, parent: int = 0, proof_uri: str | None = None,
         rpc_url: str | None = None, workspace: str | Path | None = None) -> MintResult:
    """Mint the token of a proven inference: commit, then reveal with the proof (two txs)."""
    ws = Workspace.resolve(workspace)
    bundle = load_bundle(proof)
    pkg = package_mod.load(ws, bundle.circuit_id)
    proof_bytes = bytes(bundle.ezkl_proof["proof"])
    instances = evm_instances(bundle)
    commitment = input_commitment(bundle, pkg)
    with chain_mod.connect(rpc_url, ws.root) as c, ws.lock(f"signer-{c.address}"):
        dep, token, abi = _contracts(c, ws)
        if bundle.circuit_id not in dep["verifiers"]:
            raise NotFoundError(f"circuit {bundle.circuit_id[:16]} is not deployed on chain "
                                f"{c.chain_id} — run `proofmint deploy {bundle.circuit_id[:16]}`")
        model_id = bytes.fromhex(dep["verifiers"][bundle.circuit_id]["model_id"][2:])
        inference_id = token.functions.inferenceIdOf(model_id, instances, proof_bytes).call()
        store = _asset_store(ws, keccak(proof_bytes).hex(), inference_id.hex())
        if not store.exists():  # before any transaction: a minted token always finds its bundle
            atomic_write_json(store, bundle.to_dict())
        existing = token.functions.tokenOfInference(inference_id).call()
        if existing:
            return _recover_or_refuse(c, token, abi, existing, bundle, store, commitment)
        salt = os.urandom(32)
        request = (model_id, to or c.address, parent, commitment, salt,
                   proof_uri or f"proofmint://{store.stem}", bundle.count)
        vka = evm.vka_for(pkg, dep["verifiers"][bundle.circuit_id])
        mint_fn = token.functions.mint(request, proof_bytes, instances, vka)
        with progress.step("commit"):
            c1 = c.transact(token.functions.commit(
                token.functions.commitmentFor(c.address, inference_id, salt).call()), abi)
        failpoint("mint:after-commit")
        what = f"mint {bundle.count} tokens" if bundle.count > 1 else "mint"
        with progress.step(f"{what} (verify proof on-chain)"):
            r = c.transact(mint_fn, abi)
        failpoint("mint:before-record")
        ids = [e["args"]["tokenId"] for e in token.events.Minted().process_receipt(r, errors=DISCARD)]
        result = MintResult(ids[0], "0x" + bytes(r["transactionHash"]).hex(),
                            {"commit": c1["gasUsed"], "mint": r["gasUsed"]}, c.chain_id,
                            bundle.circuit_id, "0x" + commitment.hex(), request[1], ids)
        _write_record(c, result, store)
        return result


def _write_record(c: chain_mod.Chain, result: MintResult, store: Path) -> None:
    """One local record per token (its index in the batch is its place in token_ids)."""
    for token_id in result.token_ids:
        atomic_write_json(c.records("assets", f"{token_id}.json"),
                          result.to_dict() | {"token_id": token_id, "bundle": str(store),
                                              "recorded_at": time.time()})


def _recover_or_refuse(c, token, abi, token_id: int, bundle, store: Path, commitment: bytes):
    """The inference is minted already. If we minted it and lost the local record (killed after
    the mint landed), write the record again; otherwise refuse the double mint."""
    rec = _token_record(token, token_id, abi, c)
    record_file = c.records("assets", f"{token_id}.json")
    ours = rec["creator"] == c.address and \
        store == _asset_store(c.ws, rec["proofHash"], rec["inferenceId"])
    if not ours or record_file.exists():
        raise ChainError(f"this inference is already token {token_id} — the same inference can't "
                         "be minted twice")
    progress.note(f"token {token_id} was minted by you but not recorded locally (interrupted run): "
                  "recording it now")
    result = MintResult(token_id, "", {}, c.chain_id, bundle.circuit_id, "0x" + commitment.hex(),
                        token.functions.ownerOf(token_id).call(),
                        list(range(token_id, token_id + rec["batchCount"])))
    _write_record(c, result, store)
    return result


def _token_record(token, token_id: int, abi: list, c: chain_mod.Chain) -> dict:
    rec = c.call(token.functions.record(token_id), abi)
    names = ["modelId", "inferenceId", "inputCommitment", "outputsHash", "proofHash", "creator",
             "mintedAt", "parent", "proofURI", "batchIndex", "batchCount"]
    return {n: ("0x" + v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, rec)}


def show(token_id: int, rpc_url: str | None = None, workspace: str | Path | None = None) -> dict:
    """The on-chain record, metadata, owner and royalty of a token."""
    ws = Workspace.resolve(workspace)
    with chain_mod.connect(rpc_url, ws.root) as c:
        dep, token, abi = _contracts(c, ws)
        rec = _token_record(token, token_id, abi, c)
        uri = token.functions.tokenURI(token_id).call()
        meta = json.loads(base64.b64decode(uri.split(",", 1)[1]))
        receiver, amount = token.functions.royaltyInfo(token_id, 10_000).call()
        return {"token_id": token_id, "chain_id": c.chain_id, "owner": token.functions.ownerOf(token_id).call(),
                "record": rec, "metadata": meta,
                "royalty": {"receiver": receiver, "bps": amount}}


@dataclass
class AssetVerdict:
    token_id: int
    valid: bool
    checks: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _registered(registry, model_id: str, c: chain_mod.Chain, abi: list) -> dict:
    names = ["owner", "verifier", "royaltyBps", "circuitHash", "onnxHash", "vkHash", "verifierCodeHash",
             "vkaDigest", "batchSize", "inputStart", "inputCount", "outputStart", "outputCount",
             "instanceCount", "inputHashed", "metadataURI", "licenseURI"]
    m = c.call(registry.functions.model(bytes.fromhex(model_id[2:])), abi)
    return {n: ("0x" + v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, m)}


def registration_checks(reg: dict, pkg: CircuitPackage, c: chain_mod.Chain, entry: dict) -> dict[str, tuple[bool, str]]:
    """The registry entry against the model's own artifacts: whoever registered it chose every
    field, so each is re-derived here (ONNX hash, verifying key, the verifier's code as
    rendered from that key, the instance layout from the settings)."""
    from eth_utils import keccak as keccak256

    kind = "reusable" if reg["vkaDigest"] != "0x" + "00" * 32 else "dedicated"
    art = evm.verifier_artifact(pkg, reusable=kind == "reusable")
    code = bytes(c.w3.eth.get_code(reg["verifier"]))
    expected = evm.registration(pkg, reg["verifier"], art)
    layout = dict(zip(["batchSize", "inputStart", "inputCount", "outputStart", "outputCount",
                       "instanceCount", "inputHashed"], expected[5:12]))
    return {
        "model file": (sha256_file(pkg.onnx) == reg["onnxHash"][2:],
                       f"sha256 of the model's ONNX {'equals' if sha256_file(pkg.onnx) == reg['onnxHash'][2:] else 'differs from'} "
                       "the registered ONNX hash"),
        "verifying key": (sha256_file(pkg.vk) == reg["vkHash"][2:],
                          "sha256 of the circuit's verifying key vs the registered vk hash"),
        "verifier code": (code and keccak256(code) == keccak256(hexstr=art["runtime"])
                          and "0x" + keccak256(code).hex() == reg["verifierCodeHash"]
                          and reg["vkaDigest"] == "0x" + evm.vka_digest(art["vka"]).hex(),
                          f"the {kind} verifier at {reg['verifier']} is the code ezkl renders from the "
                          "registered key" + (" (and its VKA digest)" if kind == "reusable" else "")),
        "layout": (all(reg[k] == v for k, v in layout.items()),
                   "the registered instance layout is the one the circuit's settings give"),
    }


def verify_asset(token_id: int, rpc_url: str | None = None,
                 workspace: str | Path | None = None) -> AssetVerdict:
    """Re-check a token from its id alone: the registration against the model's artifacts,
    on-chain and local proof, bundle vs record, re-run of the model."""
    ws = Workspace.resolve(workspace)
    checks: dict[str, dict] = {}

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = {"ok": bool(ok), "detail": detail}

    def verdict() -> AssetVerdict:
        return AssetVerdict(token_id, all(v["ok"] for v in checks.values()), checks)

    with chain_mod.connect(rpc_url, ws.root) as c:
        dep, token, abi = _contracts(c, ws)
        rec = _token_record(token, token_id, abi, c)
        registry = c.w3.eth.contract(address=dep["registry"], abi=evm.build_contracts(ws)["ModelRegistry"]["abi"])
        reg = _registered(registry, rec["modelId"], c, abi)
        pkg = package_mod.load(ws, reg["circuitHash"][2:])
        for name, (ok, detail) in registration_checks(reg, pkg, c, dep["verifiers"].get(pkg.circuit_id, {})).items():
            check(name, ok, detail)
        store = _asset_store(ws, rec["proofHash"], rec["inferenceId"])
        if not store.is_file():
            check("proof bundle", False, f"the bundle of proof {rec['proofHash']} is not in this "
                  f"workspace's asset store — fetch it from {rec['proofURI']}")
            return verdict()
        bundle = load_bundle(store)
        proof_bytes = bytes(bundle.ezkl_proof["proof"])
        instances = evm_instances(bundle)
        layout = pkg.instance_layout()
        index = rec["batchIndex"]
        start = layout["outputStart"] + index * layout["outputCount"]
        outputs = b"".join(v.to_bytes(32, "big") for v in instances[start:start + layout["outputCount"]])
        check("bundle matches record",
              "0x" + keccak(proof_bytes).hex() == rec["proofHash"]
              and bundle.circuit_id == pkg.circuit_id
              and "0x" + keccak(outputs).hex() == rec["outputsHash"],
              "proof hash, circuit and outputs hash equal the on-chain record")
        from eth_abi import encode

        prompt = encode(["bytes32", "bytes32"], [bytes.fromhex(rec["modelId"][2:]),
                                                 bytes.fromhex(rec["inputCommitment"][2:])])
        vka = [bytes.fromhex(w[2:]) for w in evm.verifier_artifact(pkg, reusable=True)["vka"]] \
            if reg["vkaDigest"] != "0x" + "00" * 32 else []
        packed = encode(["bytes", "uint256[]", "bytes32[]", "uint256"], [proof_bytes, instances, vka, index])
        onchain = token.functions.verify(prompt, outputs, packed).call()
        check("on-chain verify", onchain, "ERC-7007 verify() via the registered EZKL verifier")
    ok, reason = ezkl_verify(bundle, pkg)
    check("local verify", ok, reason)
    claimed = item_commitments(bundle, pkg)
    check("input commitment", index < len(claimed) and "0x" + claimed[index].hex() == rec["inputCommitment"],
          "the bundle's input commits to the recorded input commitment")
    if bundle.input is not None:
        from proofmint.models.onnx_model import load_onnx
        from proofmint.prover.witness import split_items

        item = np.array(bundle.input).reshape(pkg.batch_size, -1)[index]
        ref = np.concatenate([o.ravel() for o in load_onnx(pkg.onnx).run(item)])
        out = split_items([np.asarray(o) for o in bundle.outputs], pkg.batch_size)[index]
        diff = float(np.abs(ref - out).max())
        tol = max(2 * pkg.quantization.get("max_abs_error", 0.0), 1e-6)
        check("re-run model", diff <= tol,
              f"{pkg.reference} on the stored input: max abs diff {diff:.4g} (tolerance {tol:.4g})")
    else:
        check("re-run model", True, "input is private: not re-run")
    return verdict()
