"""``proofmint deploy``: a circuit's EZKL verifier on a chain, our contracts, the model's registration.

The circuit's artifacts (ONNX, package, settings, verifying key, SRS) and the training-data
manifest are published to the content store first: the registration names them by CID, with
the model's version, parent model, license terms and royalty split.

Addresses are recorded per chain id in the workspace (``chains/<id>/deployments.json``); a
recorded contract whose code is gone (a chain reset) is deployed again, and a second deploy
of the same circuit on the same chain is a no-op.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from proofmint import progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError, UsageError
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_file

from proofmint.verifier.evm import build_contracts, verifier_artifact, vka_digest, vka_words
from proofmint.verifier.content.publish import CircuitContent, TrainingData, publish_circuit, publish_training
from proofmint.verifier.chain.client import Chain, connect
from proofmint.verifier.content.store import ContentStore

MAX_RUNTIME_BYTES = 24_576  # EIP-170
# Blocks a mint's commitment ages before its reveal: taking a reveal from the mempool means
# keeping it out of this many consecutive blocks (SECURITY.md measures what that costs).
COMMIT_AGE_BLOCKS = 16
DEFAULT_ROYALTY_BPS = 500
ALL_SHARES = 10_000
NO_PARENT = b"\0" * 32


@dataclass(frozen=True)
class License:
    """Structured license terms (after Story Protocol's PIL), registered with the model."""

    commercial_use: bool = True
    derivatives_allowed: bool = True
    attribution_required: bool = True
    # of a derivative token's royalty, to its parent token's creator, where the derivative's model
    # is this one or registered this one as its parent (the child's owner agreed to it)
    parent_share_bps: int = 0

    def solidity(self) -> dict:
        return {"commercialUse": self.commercial_use, "derivativesAllowed": self.derivatives_allowed,
                "attributionRequired": self.attribution_required, "parentShareBps": self.parent_share_bps}


def check_split(split: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    """Royalty payees and shares (basis points) as the registry takes them; refuses what the
    contract would, with the numbers."""
    if not split:
        raise UsageError("a royalty split needs at least one payee — e.g. --royalty-split 0xOWNER:10000")
    payees, shares = [], []
    for who, bps in split:
        if not is_address(who) or int(who, 16) == 0:
            raise UsageError(f"royalty payee {who!r} is not an address")
        if not isinstance(bps, int) or not 0 < bps <= ALL_SHARES:
            raise UsageError(f"royalty share {bps!r} of {who} must be 1..{ALL_SHARES} basis points")
        if to_checksum_address(who) in payees:
            raise UsageError(f"royalty payee {who} appears twice — give it one share")
        payees.append(to_checksum_address(who))
        shares.append(bps)
    if sum(shares) != ALL_SHARES:
        raise UsageError(f"royalty shares sum to {sum(shares):,} basis points; they must sum to "
                         f"{ALL_SHARES:,} (100 %)")
    return payees, shares


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
                                        built["ProvenanceToken"]["bytecode"], reg, COMMIT_AGE_BLOCKS)
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
                 content: CircuitContent | None = None, training: TrainingData | None = None,
                 license: License = License(), license_uri: str = "", version: str = "1",
                 parent_model: bytes = NO_PARENT) -> dict:
    """The registry's ``Registration`` for a circuit, by its Solidity field names: the
    circuit's fields derived from its artifacts, the rest as given."""
    return {"circuitHash": bytes.fromhex(pkg.circuit_id), "onnxHash": bytes.fromhex(pkg.model_id),
            "vkHash": bytes.fromhex(sha256_file(pkg.vk)), "verifier": verifier,
            "royaltyBps": royalty_bps, **pkg.layout.solidity(), "vkaDigest": vka_digest(art["vka"]),
            "metadataURI": content.uri if content else "", "licenseURI": license_uri,
            "modelURI": content.model_uri if content else "",
            "trainingDataRoot": training.root if training else NO_PARENT,
            "trainingDataURI": training.uri if training else "", "version": version,
            "parentModel": parent_model, "license": license.solidity()}


def deploy(circuit: str, *, reusable: bool = False, royalty_bps: int = DEFAULT_ROYALTY_BPS,
           royalty_split: list[tuple[str, int]] | None = None, license: License | None = None,
           license_uri: str = "", training_data: str | Path | None = None, version: str = "1",
           parent_model: str | None = None, rpc_url: str | None = None,
           workspace: str | Path | Workspace | None = None) -> DeployResult:
    """Publish the circuit, deploy its verifier and register the model; a repeat is a no-op.

    ``royalty_split``: (address, basis points) pairs summing to 10,000, fixed at registration
    (default: all to the deployer). ``training_data``: a training-data manifest, registered as
    its Merkle root and CID. ``parent_model``: the registration id it was fine-tuned from (its
    tokens may then be parents of this model's, with the share that model's license asks).

    A verifier over the 24,576-byte contract limit (or ``reusable=True``) goes through ezkl's
    reusable verifier, shared by every circuit on the chain, with this circuit's VKA.
    """
    ws = Workspace.resolve(workspace)
    pkg = package_mod.load(ws, circuit)
    license = license or License()
    if not 0 <= license.parent_share_bps <= ALL_SHARES:
        raise UsageError(f"the parent share {license.parent_share_bps} must be 0..{ALL_SHARES} basis points")
    parent = _model_id_bytes(parent_model) if parent_model else NO_PARENT
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
    store = ContentStore(ws)
    with progress.step("publish circuit (content store)"):
        content = publish_circuit(pkg, store)
        training = publish_training(Path(training_data), store) if training_data else None
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        payees, shares = check_split(royalty_split or [(c.address, ALL_SHARES)])
        dep, gas = ensure_core(c, built)
        entry = dep["verifiers"].get(pkg.circuit_id)
        abi = built["ModelRegistry"]["abi"] + built["RoyaltySplit"]["abi"]  # a split's errors bubble up
        registry = c.contract(dep["registry"], abi)
        model_id = c.call(registry.functions.modelIdOf(c.address, bytes.fromhex(pkg.circuit_id)), abi)
        already = bool(entry) and c.has_code(entry["address"]) and \
            c.call(registry.functions.isRegistered(model_id), abi)
        if not already:
            addr = _deploy_verifier(c, dep, art, gas)
            with progress.step("register model"):
                receipt = c.transact(registry.functions.registerModel(registration(
                    pkg, addr, art, royalty_bps=royalty_bps, content=content, training=training,
                    license=license, license_uri=license_uri, version=version, parent_model=parent),
                    vka_words(art), payees, shares), abi)
            gas["register_model"] = receipt["gasUsed"]
            dep["verifiers"][pkg.circuit_id] = {
                "address": addr, "kind": art["kind"], "runtime_bytes": art["runtime_bytes"],
                "vka_digest": "0x" + vka_digest(art["vka"]).hex(), "owner": c.address,
                "royalty_bps": royalty_bps, "model_id": "0x" + bytes(model_id).hex(),
                "royalty_split": [[p, s] for p, s in zip(payees, shares)],
                "model_uri": content.model_uri, "circuit_uri": content.uri}
            atomic_write_json(c.deployments_file, dep)
        entry = dep["verifiers"][pkg.circuit_id]
        return DeployResult(pkg.circuit_id, c.chain_id, entry["address"], dep["registry"], dep["token"],
                            entry["runtime_bytes"], entry.get("kind", "dedicated"), already, gas)


def _model_id_bytes(value: str) -> bytes:
    raw = value.removeprefix("0x")
    if len(raw) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in raw):
        raise UsageError(f"--parent-model {value!r} is not a registration id (0x + 64 hex)")
    return bytes.fromhex(raw)


def vka_for(pkg: CircuitPackage, entry: dict) -> list[bytes]:
    """The VKA words a mint must pass for this deployment (none for a dedicated verifier)."""
    if entry.get("kind") != "reusable":
        return []
    return vka_words(verifier_artifact(pkg, reusable=True))
