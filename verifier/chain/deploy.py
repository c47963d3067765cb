"""``proofmint deploy``: a circuit's EZKL verifier on a chain, our contracts, the model's registration.

The circuit's artifacts (ONNX, package, settings, verifying key, SRS) and the training-data
manifest are published to the content store first: the registration names them by CID, with
the model's version, parent model, license terms and royalty split.

A segmented model (one too big for one circuit, compiled as linked segments) gets a verifier
per segment and one registration of the chain: the segments in order with their verifiers,
keys and instance counts, and per cut the instance positions the registry checks equal
(``ModelRegistry.registerSegmentedModel``); every segment's circuit and ``segments.json`` are
published under one manifest.

Addresses are recorded per chain id in the workspace (``chains/<id>/deployments.json``); a
recorded contract whose code is gone (a chain reset) is deployed again, and a second deploy
of the same circuit on the same chain is a no-op.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_utils import is_address, keccak, to_checksum_address

from proofmint import progress
from proofmint.circuits import package as package_mod, segmented as segmented_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError, UsageError
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_file

from proofmint.verifier.evm import build_contracts, verifier_artifact, vka_digest, vka_words
from proofmint.verifier.content.publish import CircuitContent, TrainingData, publish_circuit, publish_training
from proofmint.verifier.content.segmented import SegmentedView, publish_segmented
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
    # of a token's royalty, to whoever proved it, where the mint names them (signed by their key)
    prover_share_bps: int = 0

    def solidity(self) -> dict:
        return {"commercialUse": self.commercial_use, "derivativesAllowed": self.derivatives_allowed,
                "attributionRequired": self.attribution_required, "parentShareBps": self.parent_share_bps,
                "proverShareBps": self.prover_share_bps}


NO_ARGMAX = 2**16 - 1  # the registry's Fidelity.argmaxBps of a model that is no classifier


def fidelity(pkg: CircuitPackage | SegmentedView) -> dict:
    """The registry's ``Fidelity``: compile's measured fidelity of the circuit to the float model
    (max error in millionths of the output span, rounded up; argmax agreement in basis points,
    rounded down; held-out sample count; the reference engine; the sha256 of exactly the samples
    judged, zero for a package compiled before compile recorded it)."""
    q = pkg.quantization
    argmax = q.get("argmax_agreement")
    return {"errorPpm": math.ceil(q.get("relative_max_error", 0.0) * 1_000_000 - 1e-9),
            "samples": int(q.get("samples", 0)),
            "argmaxBps": NO_ARGMAX if argmax is None else math.floor(argmax * ALL_SHARES + 1e-9),
            "referenceEngine": pkg.reference.encode()[:32].ljust(32, b"\0"),
            "samplesDigest": bytes.fromhex(q["samples_digest"]) if "samples_digest" in q else NO_PARENT}


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
    verifier_kind: str  # "dedicated", "reusable", or "segmented" (each segment's in `segments`)
    already_deployed: bool
    gas: dict
    # a segmented model's: per segment, its circuit id, verifier, kind and runtime bytes
    segments: list[dict] = field(default_factory=list)

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


def _deploy_verifier(c: Chain, dep: dict, art: dict, gas: dict, segment: int | None = None) -> str:
    """A dedicated verifier per circuit; a reusable one once per chain (per source), plus the
    VKA. ``segment``: which segment of a segmented model (its gas figures say so)."""
    tag, what = ("", "") if segment is None else (f"_{segment}", f" (segment {segment})")
    if art["kind"] == "dedicated":
        with progress.step(f"deploy verifier{what}"):
            addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
        gas[f"deploy_verifier{tag}"] = receipt["gasUsed"]
        return addr
    shared = dep.setdefault("reusable_verifiers", {})
    addr = shared.get(art["source_sha256"])
    if not c.has_code(addr):
        with progress.step("deploy reusable verifier"):
            addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
        gas["deploy_reusable_verifier"] = receipt["gasUsed"]
        shared[art["source_sha256"]] = addr
    verifier = c.w3.eth.contract(address=addr, abi=art["abi"])
    with progress.step(f"register VKA{what}"):
        receipt = c.transact(verifier.functions.registerVka(vka_words(art)), art["abi"])
    gas[f"register_vka{tag}"] = receipt["gasUsed"]
    return addr


def vk_hash(pkg: CircuitPackage | SegmentedView) -> bytes:
    """The registry's ``vkHash``: sha256 of the verifying key; for a segmented model keccak256
    of its segments' packed, in order (the registry requires it)."""
    if isinstance(pkg, SegmentedView):
        return keccak(b"".join(vk_hash(p) for p in pkg.segments))
    return bytes.fromhex(sha256_file(pkg.vk))


def registration(pkg: CircuitPackage | SegmentedView, verifier: str, art: dict | list[dict], *,
                 royalty_bps: int = DEFAULT_ROYALTY_BPS, content: CircuitContent | None = None,
                 training: TrainingData | None = None, license: License = License(), license_uri: str = "",
                 version: str = "1", parent_model: bytes = NO_PARENT, input_from: bytes = NO_PARENT) -> dict:
    """The registry's ``Registration`` for a circuit, by its Solidity field names: the
    circuit's fields derived from its artifacts, the rest as given. For a segmented model
    (``art``: each segment's verifier artifact) the chain's: its id, the model's ONNX, the
    first segment's ``verifier``, the segments' instances back to back, their VKAs'.
    ``input_from``: the registration whose outputs are this model's inputs (lineage), from
    the package's ``input_from_start`` among them."""
    arts = art if isinstance(art, list) else [art]
    return {"circuitHash": bytes.fromhex(pkg.circuit_id), "onnxHash": bytes.fromhex(pkg.model_id),
            "vkHash": vk_hash(pkg), "verifier": verifier, "royaltyBps": royalty_bps, **pkg.layout.solidity(),
            "vkaDigest": vka_digest([w for a in arts for w in a["vka"]]),
            "metadataURI": content.uri if content else "", "licenseURI": license_uri,
            "modelURI": content.model_uri if content else "",
            "trainingDataRoot": training.root if training else NO_PARENT,
            "trainingDataURI": training.uri if training else "", "version": version,
            "parentModel": parent_model, "license": license.solidity(), "inputFrom": input_from,
            "inputFromStart": getattr(pkg, "input_from_start", 0) if input_from != NO_PARENT else 0,
            "fidelity": fidelity(pkg)}


def segments_of(view: SegmentedView, verifiers: list[str], arts: list[dict]) -> list[dict]:
    """The registry's ``Segment`` of each segment, in order, by its Solidity field names."""
    return [{"circuitHash": bytes.fromhex(p.circuit_id), "vkHash": vk_hash(p), "verifier": v,
             "instanceCount": p.layout.instance_count, "vkaDigest": vka_digest(a["vka"]), "vkaLength": len(a["vka"])}
            for p, v, a in zip(view.segments, verifiers, arts)]


def _artifact(pkg: CircuitPackage, reusable: bool) -> dict:
    """The circuit's dedicated verifier, or ezkl's reusable one + its VKA when asked or when the
    dedicated one is over the contract size limit."""
    art = verifier_artifact(pkg)
    if reusable or art["runtime_bytes"] > MAX_RUNTIME_BYTES:
        if not reusable:
            progress.note(f"the dedicated verifier of {pkg.circuit_id[:12]} is {art['runtime_bytes']} bytes, "
                          f"over the {MAX_RUNTIME_BYTES}-byte limit: using ezkl's reusable verifier + VKA")
        art = verifier_artifact(pkg, reusable=True)
        if art["runtime_bytes"] > MAX_RUNTIME_BYTES:
            raise ChainError(f"even ezkl's reusable verifier is {art['runtime_bytes']} bytes, over "
                             f"the {MAX_RUNTIME_BYTES}-byte limit of most chains")
    return art


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
    A circuit compiled ``--input-from`` a parent circuit is registered with that circuit's
    registration on this chain as its ``inputFrom``: a token of it naming a token of the parent
    as its parent must then prove its input is that token's output (lineage proven on-chain).

    A verifier over the 24,576-byte contract limit (or ``reusable=True``) goes through ezkl's
    reusable verifier, shared by every circuit on the chain, with this circuit's VKA. A
    segmented circuit gets a verifier per segment (each chosen so) and one registration.
    """
    ws = Workspace.resolve(workspace)
    spkg = segmented_mod.load(ws, circuit)
    pkg = SegmentedView(spkg, spkg.packages(ws, verify_only=True)) if spkg else package_mod.load(ws, circuit)
    license = license or License()
    for what, bps in (("parent", license.parent_share_bps), ("prover", license.prover_share_bps)):
        if not 0 <= bps <= ALL_SHARES:
            raise UsageError(f"the {what} share {bps} must be 0..{ALL_SHARES} basis points")
    parent = _model_id_bytes(parent_model) if parent_model else NO_PARENT
    circuits = pkg.segments if spkg else [pkg]
    arts = [_artifact(p, reusable) for p in circuits]
    built = build_contracts(ws)
    store = ContentStore(ws)
    with progress.step("publish circuit (content store)"):
        content = publish_segmented(pkg, store) if spkg else publish_circuit(pkg, store)
        training = publish_training(Path(training_data), store) if training_data else None
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        payees, shares = check_split(royalty_split or [(c.address, ALL_SHARES)])
        dep, gas = ensure_core(c, built)
        entry = dep["verifiers"].get(pkg.circuit_id)
        abi = built["ModelRegistry"]["abi"] + built["RoyaltySplit"]["abi"]  # a split's errors bubble up
        registry = c.contract(dep["registry"], abi)
        model_id = c.call(registry.functions.modelIdOf(c.address, bytes.fromhex(pkg.circuit_id)), abi)
        verifiers = [s["address"] for s in entry.get("segments", [entry])] if entry else []
        already = bool(entry) and all(map(c.has_code, verifiers)) and \
            c.call(registry.functions.isRegistered(model_id), abi)
        if not already:
            input_from = _input_from(dep, pkg)
            verifiers = [_deploy_verifier(c, dep, art, gas, i if spkg else None) for i, art in enumerate(arts)]
            reg = registration(pkg, verifiers[0], arts, royalty_bps=royalty_bps,
                               content=content, training=training, license=license, license_uri=license_uri,
                               version=version, parent_model=parent, input_from=input_from)
            vka = [w for art in arts for w in vka_words(art)]
            fn = registry.functions.registerSegmentedModel(
                reg, segments_of(pkg, verifiers, arts), [link.solidity() for link in pkg.links], vka, payees,
                shares) if spkg else registry.functions.registerModel(reg, vka, payees, shares)
            with progress.step("register model"):
                receipt = c.transact(fn, abi)
            gas["register_model"] = receipt["gasUsed"]
            dep["verifiers"][pkg.circuit_id] = _entry(
                verifiers, arts, circuits, spkg is not None, owner=c.address, royalty_bps=royalty_bps,
                model_id="0x" + bytes(model_id).hex(), royalty_split=[[p, s] for p, s in zip(payees, shares)],
                model_uri=content.model_uri, circuit_uri=content.uri)
            atomic_write_json(c.deployments_file, dep)
        entry = dep["verifiers"][pkg.circuit_id]
        return DeployResult(pkg.circuit_id, c.chain_id, entry["address"], dep["registry"], dep["token"],
                            entry["runtime_bytes"], entry.get("kind", "dedicated"), already, gas,
                            entry.get("segments", []))


def _entry(verifiers: list[str], arts: list[dict], circuits: list[CircuitPackage], segmented: bool,
           **fields) -> dict:
    """What deployments.json records of a registration; a segmented one lists its segments."""
    one = [{"circuit_id": p.circuit_id, "address": v, "kind": a["kind"], "runtime_bytes": a["runtime_bytes"],
            "vka_digest": "0x" + vka_digest(a["vka"]).hex()} for p, v, a in zip(circuits, verifiers, arts)]
    if not segmented:
        return {k: v for k, v in one[0].items() if k != "circuit_id"} | fields
    return {"address": verifiers[0], "kind": "segmented", "runtime_bytes": sum(s["runtime_bytes"] for s in one),
            "vka_digest": "0x" + vka_digest([w for a in arts for w in a["vka"]]).hex(), "segments": one} | fields


def _input_from(dep: dict, pkg: CircuitPackage | SegmentedView) -> bytes:
    """The registration id of the circuit this one's input is from (compile --input-from): it
    must be deployed on this chain first."""
    parent = getattr(pkg, "input_from", None)
    if not parent:
        return NO_PARENT
    entry = dep["verifiers"].get(parent)
    if entry is None:
        raise UsageError(f"circuit {pkg.circuit_id[:16]} takes circuit {parent[:16]}'s output as its input, "
                         f"which is not deployed on this chain — run `proofmint deploy {parent[:16]}` first")
    return bytes.fromhex(entry["model_id"][2:])


def _model_id_bytes(value: str) -> bytes:
    raw = value.removeprefix("0x")
    if len(raw) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in raw):
        raise UsageError(f"--parent-model {value!r} is not a registration id (0x + 64 hex)")
    return bytes.fromhex(raw)


def vka_for(pkg: CircuitPackage | SegmentedView, entry: dict) -> list[bytes]:
    """The VKA words a mint must pass for this deployment (none for a dedicated verifier; a
    segmented model's segments' back to back)."""
    if "segments" in entry:
        return [w for p, s in zip(pkg.segments, entry["segments"]) for w in vka_for(p, s)]
    if entry.get("kind") != "reusable":
        return []
    return vka_words(verifier_artifact(pkg, reusable=True))
