"""``proofmint deploy``: a circuit's EZKL verifier on a chain, our contracts, the model's registration.

Addresses are recorded per chain id in the workspace (``chains/<id>/deployments.json``); a
recorded contract whose code is gone (a chain reset) is deployed again, and a second deploy
of the same circuit on the same chain is a no-op.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from proofmint import progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_file

from .artifacts import build_contracts, verifier_artifact, vka_digest, vka_words
from .client import Chain, connect

MAX_RUNTIME_BYTES = 24_576  # EIP-170
DEFAULT_ROYALTY_BPS = 500


@dataclass
class DeployResult:
    circuit_id: str
    chain_id: int
    verifier: str
    registry: str
    token: str
    verifier_runtime_bytes: int
    verifier_kind: str  # "dedicated" or "reusable"
    already_deployed: bool
    gas: dict

    def to_dict(self) -> dict:
        return asdict(self)


def ensure_core(c: Chain, built: dict) -> tuple[dict, dict]:
    """Registry and token on this chain, deployed once per contracts version; returns the
    deployments record and the gas used. Tokens minted by an older version stay on its contracts."""
    path = c.deployments_file
    dep = read_json(path) if path.is_file() else {"verifiers": {}}
    gas = {}
    current = dep.get("contracts_digest") == built["digest"]
    if not current or not c.has_code(dep.get("registry")) or not c.has_code(dep.get("token")):
        with progress.step("deploy ModelRegistry + ProvenanceToken"):
            reg, r1 = c.deploy_contract(built["ModelRegistry"]["abi"], built["ModelRegistry"]["bytecode"])
            tok, r2 = c.deploy_contract(built["ProvenanceToken"]["abi"],
                                        built["ProvenanceToken"]["bytecode"], reg)
        dep = {"chain_id": c.chain_id, "contracts_digest": built["digest"], "registry": reg,
               "token": tok, "verifiers": {}, "reusable_verifiers": dep.get("reusable_verifiers", {})}
        gas = {"deploy_registry": r1["gasUsed"], "deploy_token": r2["gasUsed"]}
        atomic_write_json(path, dep)
    return dep, gas


def _deploy_verifier(c: Chain, dep: dict, art: dict, gas: dict) -> str:
    """A dedicated verifier per circuit; a reusable one once per chain (per source), plus the VKA."""
    if art["kind"] == "dedicated":
        with progress.step("deploy verifier"):
            addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
        gas["deploy_verifier"] = receipt["gasUsed"]
        return addr
    shared = dep.setdefault("reusable_verifiers", {})
    addr = shared.get(art["source_sha256"])
    if not c.has_code(addr):
        with progress.step("deploy reusable verifier"):
            addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
        gas["deploy_reusable_verifier"] = receipt["gasUsed"]
        shared[art["source_sha256"]] = addr
    verifier = c.w3.eth.contract(address=addr, abi=art["abi"])
    with progress.step("register VKA"):
        receipt = c.transact(verifier.functions.registerVka(vka_words(art)), art["abi"])
    gas["register_vka"] = receipt["gasUsed"]
    return addr


def registration(pkg: CircuitPackage, verifier: str, art: dict, *, royalty_bps: int = DEFAULT_ROYALTY_BPS,
                 metadata_uri: str = "", license_uri: str = "") -> dict:
    """The registry's ``Registration`` for a circuit, by its Solidity field names: every field
    derived from the circuit's artifacts."""
    return {"circuitHash": bytes.fromhex(pkg.circuit_id), "onnxHash": bytes.fromhex(pkg.model_id),
            "vkHash": bytes.fromhex(sha256_file(pkg.vk)), "verifier": verifier,
            "royaltyBps": royalty_bps, **pkg.layout.solidity(), "vkaDigest": vka_digest(art["vka"]),
            "metadataURI": metadata_uri, "licenseURI": license_uri}


def deploy(circuit: str, *, reusable: bool = False, royalty_bps: int = DEFAULT_ROYALTY_BPS,
           metadata_uri: str = "", license_uri: str = "", rpc_url: str | None = None,
           workspace: str | Path | Workspace | None = None) -> DeployResult:
    """Deploy the circuit's verifier and register the model; a repeat is a no-op.

    A verifier over the 24,576-byte contract limit (or ``reusable=True``) goes through ezkl's
    reusable verifier, shared by every circuit on the chain, with this circuit's VKA.
    """
    ws = Workspace.resolve(workspace)
    pkg = package_mod.load(ws, circuit)
    art = verifier_artifact(pkg)
    if reusable or art["runtime_bytes"] > MAX_RUNTIME_BYTES:
        if not reusable:
            progress.note(f"the dedicated verifier is {art['runtime_bytes']} bytes, over the "
                          f"{MAX_RUNTIME_BYTES}-byte limit: using ezkl's reusable verifier + VKA")
        art = verifier_artifact(pkg, reusable=True)
        if art["runtime_bytes"] > MAX_RUNTIME_BYTES:
            raise ChainError(f"even ezkl's reusable verifier is {art['runtime_bytes']} bytes, over "
                             f"the {MAX_RUNTIME_BYTES}-byte limit of most chains")
    built = build_contracts(ws)
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        dep, gas = ensure_core(c, built)
        entry = dep["verifiers"].get(pkg.circuit_id)
        abi = built["ModelRegistry"]["abi"]
        registry = c.contract(dep["registry"], abi)
        model_id = c.call(registry.functions.modelIdOf(c.address, bytes.fromhex(pkg.circuit_id)), abi)
        already = bool(entry) and c.has_code(entry["address"]) and \
            c.call(registry.functions.isRegistered(model_id), abi)
        if not already:
            addr = _deploy_verifier(c, dep, art, gas)
            with progress.step("register model"):
                receipt = c.transact(registry.functions.registerModel(registration(
                    pkg, addr, art, royalty_bps=royalty_bps, metadata_uri=metadata_uri,
                    license_uri=license_uri)), abi)
            gas["register_model"] = receipt["gasUsed"]
            dep["verifiers"][pkg.circuit_id] = {
                "address": addr, "kind": art["kind"], "runtime_bytes": art["runtime_bytes"],
                "vka_digest": "0x" + vka_digest(art["vka"]).hex(), "owner": c.address,
                "royalty_bps": royalty_bps, "model_id": "0x" + bytes(model_id).hex()}
            atomic_write_json(c.deployments_file, dep)
        entry = dep["verifiers"][pkg.circuit_id]
        return DeployResult(pkg.circuit_id, c.chain_id, entry["address"], dep["registry"], dep["token"],
                            entry["runtime_bytes"], entry.get("kind", "dedicated"), already, gas)


def vka_for(pkg: CircuitPackage, entry: dict) -> list[bytes]:
    """The VKA words a mint must pass for this deployment (none for a dedicated verifier)."""
    if entry.get("kind") != "reusable":
        return []
    return vka_words(verifier_artifact(pkg, reusable=True))
