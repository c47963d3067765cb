"""``proofmint show`` and ``proofmint verify-asset``: read a token back, and re-check it from its id."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from eth_utils import keccak

from proofmint import encoding
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.circuits.witness import split_items
from proofmint.models.onnx_model import load_onnx
from proofmint.prover.bundle import load_bundle
from proofmint.store import Workspace, sha256_file

from .artifacts import verifier_artifact, vka_digest, vka_words
from .client import Chain, connect
from .deploy import registration
from .local import ezkl_verify
from .mint import item_commitments
from .records import deployment

NO_VKA = "0x" + "00" * 32


@dataclass
class TokenView:
    token_id: int
    chain_id: int
    owner: str
    record: dict  # ProvenanceToken.record, by field name
    metadata: dict  # tokenURI's JSON
    royalty: dict  # receiver and basis points

    def to_dict(self) -> dict:
        return asdict(self)


def show(token_id: int, *, rpc_url: str | None = None,
         workspace: str | Path | Workspace | None = None) -> TokenView:
    """The on-chain record, metadata, owner and royalty of a token."""
    with connect(rpc_url=rpc_url, workspace=workspace) as c:
        d = deployment(c)
        rec = d.token_record(token_id)
        uri = c.call(d.token.functions.tokenURI(token_id), d.abi)
        meta = json.loads(base64.b64decode(uri.split(",", 1)[1]))
        receiver, amount = c.call(d.token.functions.royaltyInfo(token_id, 10_000), d.abi)
        return TokenView(token_id, c.chain_id, c.call(d.token.functions.ownerOf(token_id), d.abi),
                         rec, meta, {"receiver": receiver, "bps": amount})


@dataclass
class Check:
    ok: bool
    detail: str


@dataclass
class AssetVerdict:
    token_id: int
    valid: bool
    checks: dict[str, Check] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def registration_checks(reg: dict, pkg: CircuitPackage, c: Chain) -> dict[str, Check]:
    """The registry entry against the model's own artifacts: whoever registered it chose every
    field, so each is re-derived here (ONNX hash, verifying key, the verifier's code as
    rendered from that key, the instance layout from the settings)."""
    kind = "reusable" if reg["vkaDigest"] != NO_VKA else "dedicated"
    art = verifier_artifact(pkg, reusable=kind == "reusable")
    code = bytes(c.w3.eth.get_code(reg["verifier"]))
    expected = registration(pkg, reg["verifier"], art)
    onnx_ok = sha256_file(pkg.onnx) == reg["onnxHash"][2:]
    return {
        "model file": Check(onnx_ok, f"sha256 of the model's ONNX {'equals' if onnx_ok else 'differs from'} "
                            "the registered ONNX hash"),
        "verifying key": Check(sha256_file(pkg.vk) == reg["vkHash"][2:],
                               "sha256 of the circuit's verifying key vs the registered vk hash"),
        "verifier code": Check(bool(code) and keccak(code) == keccak(hexstr=art["runtime"])
                               and "0x" + keccak(code).hex() == reg["verifierCodeHash"]
                               and reg["vkaDigest"] == "0x" + vka_digest(art["vka"]).hex(),
                               f"the {kind} verifier at {reg['verifier']} is the code ezkl renders from the "
                               "registered key" + (" (and its VKA digest)" if kind == "reusable" else "")),
        "layout": Check(all(reg[k] == v for k, v in expected.items() if k in pkg.layout.solidity()),
                        "the registered instance layout is the one the circuit's settings give"),
    }


def verify_asset(token_id: int, *, rpc_url: str | None = None,
                 workspace: str | Path | Workspace | None = None) -> AssetVerdict:
    """Re-check a token from its id alone: the registration against the model's artifacts,
    on-chain and local proof, bundle vs record, re-run of the model."""
    ws = Workspace.resolve(workspace)
    verdict = AssetVerdict(token_id, False)
    checks = verdict.checks

    def done() -> AssetVerdict:
        verdict.valid = all(v.ok for v in checks.values())
        return verdict

    with connect(rpc_url=rpc_url, workspace=ws) as c:
        d = deployment(c)
        rec = d.token_record(token_id)
        reg = d.model(rec["modelId"])
        pkg = package_mod.load(ws, reg["circuitHash"][2:])
        checks.update(registration_checks(reg, pkg, c))
        store = ws.minted_bundle(rec["proofHash"], rec["inferenceId"])
        if not store.is_file():
            checks["proof bundle"] = Check(False, f"the bundle of proof {rec['proofHash']} is not in this "
                                           f"workspace's asset store — fetch it from {rec['proofURI']}")
            return done()
        bundle = load_bundle(store)
        instances = bundle.instance_words
        layout, index = pkg.layout, rec["batchIndex"]
        outputs = b"".join(encoding.word(v) for v in layout.outputs_of(instances, index))
        checks["bundle matches record"] = Check(
            "0x" + keccak(bundle.proof_bytes).hex() == rec["proofHash"]
            and bundle.circuit_id == pkg.circuit_id
            and "0x" + keccak(outputs).hex() == rec["outputsHash"],
            "proof hash, circuit and outputs hash equal the on-chain record")
        prompt = encoding.prompt(bytes.fromhex(rec["modelId"][2:]), bytes.fromhex(rec["inputCommitment"][2:]))
        vka = vka_words(verifier_artifact(pkg, reusable=True)) if reg["vkaDigest"] != NO_VKA else []
        packed = encoding.aigc_proof(bundle.proof_bytes, instances, vka, index)
        onchain = c.call(d.token.functions.verify(prompt, outputs, packed), d.abi)
        checks["on-chain verify"] = Check(onchain, "ERC-7007 verify() via the registered EZKL verifier")
    ok, reason = ezkl_verify(bundle, pkg)
    checks["local verify"] = Check(ok, reason)
    claimed = item_commitments(bundle, pkg)
    checks["input commitment"] = Check(index < len(claimed) and "0x" + claimed[index].hex() == rec["inputCommitment"],
                                       "the bundle's input commits to the recorded input commitment")
    if bundle.input is not None:
        item = np.array(bundle.input).reshape(pkg.batch_size, -1)[index]
        ref = np.concatenate([o.ravel() for o in load_onnx(pkg.onnx).run(item)])
        out = split_items([np.asarray(o) for o in bundle.outputs], pkg.batch_size)[index]
        diff = float(np.abs(ref - out).max())
        tol = max(2 * pkg.quantization.get("max_abs_error", 0.0), 1e-6)
        checks["re-run model"] = Check(diff <= tol, f"{pkg.reference} on the stored input: max abs diff "
                                       f"{diff:.4g} (tolerance {tol:.4g})")
    else:
        checks["re-run model"] = Check(True, "input is private: not re-run")
    return done()
