"""``proofmint show`` and ``proofmint verify-asset``: read a token back, and re-check it from its id.

Both read the chain, then fetch by CID (from the workspace's content store, or any IPFS
gateway): so ``verify-asset`` works in an empty workspace on another machine, given the RPC
URL, a gateway and the token contract's address. Both name the token's registration, its
owner, and any earlier registration by someone else of the same circuit, model, key or
verifier (an alias or a squat: the chain can't tell which is the original).

A token of a segmented model (linked segment proofs) is checked segment by segment: each
segment's circuit re-derived (cut from the registered model, compiled to its key, its
verifier rendered from it), every proof and link checked on-chain and locally, the model
re-run on the revealed input; ``show`` lists the segments the registry holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from eth_utils import keccak

from proofmint import encoding
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.circuits.segmented import segmented_id
from proofmint.circuits.witness import split_items
from proofmint.errors import ChainError, ContentError, InvalidInputError, ProofmintError, VerificationError
from proofmint.models.onnx_model import load_onnx
from proofmint.prover.bundle import ProofBundle
from proofmint.prover.segmented import SegmentedBundle, load_any
from proofmint.store import Workspace, atomic_write_bytes, read_json, sha256_bytes, sha256_file

from proofmint.verifier.evm import build_contracts, derived_vk, verifier_artifact, vka_digest, vka_words
from proofmint.verifier.content.publish import (content_matches, fetch_circuit, fidelity_attributes, packed_outputs,
                                                schema_errors, token_error_ppm)
from proofmint.verifier.content.segmented import SegmentedView, cut_from, fetch_segmented, statement
from proofmint.verifier.chain.client import Chain, connect
from proofmint.verifier.content.store import Source, raw_cid, uri
from proofmint.verifier.chain.deploy import NO_ARGMAX, fidelity, registration, vk_hash
from proofmint.verifier.local import check_bundle, check_segmented
from proofmint.verifier.chain import lineage
from proofmint.verifier.chain.mint import item_commitments
from proofmint.verifier.chain.prover_sign import signed_prover
from proofmint.verifier.chain.records import Deployment, deployment

NO_VKA = "0x" + "00" * 32


@dataclass
class TokenView:
    token_id: int
    chain_id: int
    owner: str
    record: dict  # ProvenanceToken.record, by field name
    token_uri: str
    metadata: dict  # the ERC-7007 metadata tokenURI names ({} when it couldn't be fetched)
    royalty: dict  # receiver, basis points, and the receiver's split ([] for an account)
    metadata_error: str | None = None
    # the registration minted under: id, owner, and `alias_of` (Deployment.registration)
    registration: dict = field(default_factory=dict)
    # a segmented model's segments and links as the registry holds them (Deployment.segments)
    segments: dict = field(default_factory=dict)
    lineage: str = ""  # LINEAGE_PROVEN, LINEAGE_DECLARED, or "" without a parent

    def to_dict(self) -> dict:
        return asdict(self)


LINEAGE_PROVEN = "lineage proven"  # its input is its parent token's output, checked by the mint
LINEAGE_DECLARED = "lineage declared"  # a parent named, nothing proven about how it was used


def lineage_of(rec: dict) -> str:
    """What a token's parent link is worth (see ProvenanceToken.record's lineageProven)."""
    if not rec["parent"]:
        return ""
    return LINEAGE_PROVEN if rec["lineageProven"] else LINEAGE_DECLARED


def split_of(d: Deployment, address: str, depth: int = 0) -> list[dict]:
    """Who a RoyaltySplit pays, and what share; a payee that is itself a split is opened. An
    account, or a contract that answers no split's calls, is paid whole: no rows."""
    c = d.chain
    abi = build_contracts(c.ws)["RoyaltySplit"]["abi"]
    if not c.has_code(address):
        return []
    split = c.contract(address, abi)
    try:
        payees = c.call(split.functions.payees(), abi)
        shares = [c.call(split.functions.shares(payee), abi) for payee in payees]
    except ChainError:  # not a RoyaltySplit (web3 can't decode its answer, or it reverts)
        return []
    rows = []
    for payee, bps in zip(payees, shares):
        row = {"payee": payee, "bps": bps}
        if depth == 0 and c.has_code(payee):
            row["split"] = split_of(d, payee, depth + 1)
        rows.append(row)
    return rows


def show(token_id: int, *, rpc_url: str | None = None, gateway: str | None = None,
         token: str | None = None, workspace: str | Path | Workspace | None = None) -> TokenView:
    """The on-chain record, metadata, owner and royalty split of a token, and the registration
    it was minted under (with any earlier registration it may be an alias of)."""
    ws = Workspace.resolve(workspace)
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        d = deployment(c, token)
        rec = d.token_record(token_id)
        token_uri = c.call(d.token.functions.tokenURI(token_id), d.abi)
        receiver, amount = c.call(d.token.functions.royaltyInfo(token_id, 10_000), d.abi)
        royalty = {"receiver": receiver, "bps": amount, "split": split_of(d, receiver)}
        try:
            metadata, error = Source.of(ws, gateway).fetch_json(token_uri), None
        except ContentError as exc:
            metadata, error = {}, str(exc)
        segments = d.segments(rec["modelId"])
        return TokenView(token_id, c.chain_id, c.call(d.token.functions.ownerOf(token_id), d.abi),
                         rec, token_uri, metadata, royalty, error, d.registration(rec["modelId"]),
                         segments if segments["segments"] else {}, lineage_of(rec))


@dataclass
class Check:
    ok: bool
    detail: str


@dataclass
class AssetVerdict:
    token_id: int
    valid: bool
    checks: dict[str, Check] = field(default_factory=dict)
    # the registration minted under: id, owner, and `alias_of` (Deployment.registration)
    registration: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def registration_checks(reg: dict, pkg: CircuitPackage, model: Path, c: Chain) -> dict[str, Check]:
    """The registry entry against the model's own artifacts: whoever registered it chose every
    field, so each is re-derived here (circuit id, verifying key — from the registered model
    file ``model`` itself —, the verifier's code as rendered from that key, the instance
    layout from the settings)."""
    kind = "reusable" if reg["vkaDigest"] != NO_VKA else "dedicated"
    art = verifier_artifact(pkg, reusable=kind == "reusable")
    code = bytes(c.w3.eth.get_code(reg["verifier"]))
    expected = registration(pkg, reg["verifier"], art)
    onnx_hash = reg["onnxHash"][2:]
    derived = package_mod.circuit_id_of(onnx_hash, read_json(pkg.settings), sha256_file(pkg.srs),
                                        package_mod.lineage_of(pkg))
    same_model = sha256_file(pkg.onnx) == onnx_hash
    try:
        vk = derived_vk(pkg, model)
        compiled = "give" if vk == reg["vkHash"][2:] else "do not give"
        derivation = f"{compiled} the registered verifying key (they give sha256 {vk[:16]}…)"
    except ProofmintError as exc:  # a model ezkl can't compile with these settings
        vk, derivation = None, f"failed: {exc}"
    return {
        "circuit": Check(derived == reg["circuitHash"][2:] == pkg.circuit_id and same_model,
                         "the circuit id derived from the registered ONNX hash and the published settings "
                         f"and SRS {'equals' if derived == reg['circuitHash'][2:] else 'differs from'} the "
                         "registered one; the published circuit's model "
                         f"{'is' if same_model else 'is not'} the registered model"),
        "verifying key": Check(sha256_file(pkg.vk) == reg["vkHash"][2:],
                               "sha256 of the published verifying key vs the registered vk hash"),
        "model compiles to the key": Check(
            vk == reg["vkHash"][2:],
            f"ezkl compile_circuit + setup of the registered model with the published settings and SRS {derivation}"),
        "verifier code": Check(bool(code) and keccak(code) == keccak(hexstr=art["runtime"])
                               and "0x" + keccak(code).hex() == reg["verifierCodeHash"]
                               and reg["vkaDigest"] == "0x" + vka_digest(art["vka"]).hex(),
                               f"the {kind} verifier at {reg['verifier']} is the code ezkl renders from the "
                               "registered key" + (" (and its VKA digest)" if kind == "reusable" else "")),
        "layout": Check(all(reg[k] == v for k, v in expected.items() if k in pkg.layout.solidity()),
                        "the registered instance layout is the one the circuit's settings give"),
    }


def segmented_checks(reg: dict, chain: dict, view: SegmentedView, model: Path, c: Chain) -> dict[str, Check]:
    """A segmented registration against the published segments: the chain's id and each
    segment's re-derived, each segment cut from the registered model file ``model``, compiled
    to the key registered for it, its verifier the code ezkl renders from that key; the
    instance layout and every link the ones the segments' settings give."""
    spkg, pkgs, segs = view.spkg, view.segments, chain["segments"]
    ids = [p.circuit_id for p in pkgs]
    registered = [s["circuitHash"][2:] for s in segs]
    derived = [package_mod.circuit_id_of(p.model_id, read_json(p.settings), sha256_file(p.srs)) for p in pkgs]
    chain_id = segmented_id(reg["onnxHash"][2:], ids, spkg.link)
    try:
        cut = cut_from(model, spkg) == [p.model_id for p in pkgs]
        how = "give" if cut else "do not give"
    except ProofmintError as exc:  # a file that is no model the plan's tensors cut
        cut, how = False, f"can't be cut ({exc}), so do not give"
    vks = [vk_hash(p).hex() for p in pkgs]
    compiled = []
    for p, vk in zip(pkgs, vks):
        try:
            compiled.append(derived_vk(p, p.onnx) == vk)
        except ProofmintError:  # a segment ezkl can't compile with its settings
            compiled.append(False)
    same_keys = vks == [s["vkHash"][2:] for s in segs] and reg["vkHash"][2:] == vk_hash(view).hex()
    verifiers = [_verifier_matches(s, p, c) for s, p in zip(segs, pkgs)]
    links = [{"outputs": k.outputs, "inputs": k.inputs} for k in view.links]
    layout = all(reg[k] == v for k, v in view.layout.solidity().items()) \
        and [s["instanceCount"] for s in segs] == view.counts and chain["links"] == links
    n = len(pkgs)
    return {
        "circuit": Check(chain_id == reg["circuitHash"][2:] == spkg.circuit_id and derived == ids == registered
                         and spkg.model_id == reg["onnxHash"][2:] == sha256_file(spkg.path / "model.onnx"),
                         f"the chain's id derived from the registered ONNX hash, its {n} segments' ids and its "
                         f"{spkg.link} link {'equals' if chain_id == reg['circuitHash'][2:] else 'differs from'} the "
                         "registered one; each segment's id, derived from its ONNX, settings and SRS, is the one "
                         f"registered for it ({sum(a == b for a, b in zip(derived, registered))} of {len(segs)})"),
        "segments cut from the model": Check(cut, f"the registered model, rewritten and cut at the {n - 1} cuts "
                                                  f"segments.json records, {how} the {n} segments' ONNX files"),
        "verifying key": Check(same_keys, "sha256 of each published segment key vs the key registered for it, "
                                          "and the registered vk hash over them all"),
        "model compiles to the key": Check(cut and all(compiled) and len(compiled) == len(segs) and same_keys,
                                           f"the registered model's segments ({'cut from it' if cut else 'not cut from it'})"
                                           ": ezkl compile_circuit + setup of each with its settings and SRS gives its "
                                           f"registered key ({sum(compiled)} of {len(segs)})"),
        "verifier code": Check(all(verifiers) and len(verifiers) == len(segs) and reg["verifier"] == segs[0]["verifier"],
                               "each segment's verifier is the code ezkl renders from its registered key "
                               f"({sum(verifiers)} of {len(segs)})"),
        "layout": Check(layout, "the registered instance layout (input in the first segment's instances, outputs in "
                                "the last's), each segment's instance count and every link are the ones the "
                                "segments' settings give"),
    }


def _verifier_matches(seg: dict, pkg: CircuitPackage, c: Chain) -> bool:
    """A registered segment's verifier holds the code ezkl renders from its key (and the VKA)."""
    art = verifier_artifact(pkg, reusable=seg["vkaDigest"] != NO_VKA)
    code = bytes(c.w3.eth.get_code(seg["verifier"]))
    return bool(code) and keccak(code) == keccak(hexstr=art["runtime"]) == bytes.fromhex(seg["codeHash"][2:]) \
        and seg["vkaDigest"] == "0x" + vka_digest(art["vka"]).hex()


def _metadata_checks(meta: dict, rec: dict, reg: dict, d: Deployment, outputs_hash: str,
                     segments: list[dict]) -> dict[str, Check]:
    errors = schema_errors(meta)
    chain = meta.get("chain") or {}
    said = {"input commitment": (meta.get("input_commitment"), rec["inputCommitment"]),
            "outputs hash": (meta.get("outputs_hash"), outputs_hash),
            "proof hash": ((meta.get("proof") or {}).get("hash"), rec["proofHash"]),
            "registration": ((meta.get("model") or {}).get("registration"), rec["modelId"]),
            "model URI": ((meta.get("model") or {}).get("uri"), reg["modelURI"]),
            "parent": (meta.get("parent"), rec["parent"]), "creator": (meta.get("creator"), rec["creator"]),
            "chain id": (chain.get("chain_id"), d.chain.chain_id),
            "token contract": (chain.get("token_contract"), d.token.address)}
    if segments:  # a segmented model's: its segment circuits, in the registry's order
        said["segments"] = ((meta.get("segments") or {}).get("circuits"), [s["circuitHash"] for s in segments])
    wrong = [name for name, (claimed, actual) in said.items() if claimed != actual]
    fields = "input commitment, outputs hash, proof, model, " + "segments, " * bool(segments) + "parent, creator and chain"
    return {
        "metadata schema": Check(not errors, "validates against ERC-7007's metadata schema" if not errors
                                 else f"breaks ERC-7007's metadata schema: {errors[0]}"),
        "metadata matches record": Check(not wrong, f"{fields} equal the on-chain record" if not wrong
                                         else f"metadata disagrees with the chain on: {', '.join(wrong)}"),
    }


def _rerun(model: Path, bundle, pkg: CircuitPackage, index: int) -> tuple[Check, float | None]:
    """The registered model, in float, on the revealed input, against the proven outputs; and
    the max abs difference measured (None where it couldn't be)."""
    item = np.array(bundle.input).reshape(pkg.batch_size, -1)[index]
    try:
        ref = np.concatenate([o.ravel() for o in load_onnx(model).run(item)])
    except ProofmintError as exc:  # the registered file is no model this input runs through
        return Check(False, f"the registered model can't be run on the revealed input: {exc}"), None
    out = split_items([np.asarray(o) for o in bundle.outputs], pkg.batch_size)[index]
    if ref.shape != out.shape:
        return Check(False, f"the registered model ({pkg.reference}) gives {ref.size} outputs on the revealed "
                            f"input; the proof has {out.size}"), None
    diff = float(np.abs(ref - out).max())
    tol = max(2 * pkg.quantization.get("max_abs_error", 0.0), 1e-6)
    return Check(diff <= tol, f"the registered model ({pkg.reference}) on the revealed input: max abs diff "
                              f"{diff:.4g} (tolerance {tol:.4g})"), diff


def verify_asset(token_id: int, *, rpc_url: str | None = None, gateway: str | None = None,
                 token: str | None = None,
                 workspace: str | Path | Workspace | None = None) -> AssetVerdict:
    """Re-check a token from its id alone: fetch its metadata, model, circuit, proof and content
    by CID, and check each against the chain (registration, record, on-chain and local proof
    verification, a re-run of the model, the content against the proof's outputs). A segmented
    model's token: each segment and every link too.

    The first check that can't get what it needs stops the rest; each says what it found."""
    ws = Workspace.resolve(workspace)
    source = Source.of(ws, gateway)
    verdict = AssetVerdict(token_id, False)
    checks = verdict.checks

    def done() -> AssetVerdict:
        verdict.valid = bool(checks) and all(v.ok for v in checks.values())
        return verdict

    def fetched(name: str, fn: Callable):
        try:
            return fn()
        except (ContentError, InvalidInputError) as exc:
            checks[name] = Check(False, str(exc))
            return None

    with connect(rpc_url=rpc_url, workspace=ws) as c:
        d = deployment(c, token)
        rec = d.token_record(token_id)
        reg = d.model(rec["modelId"])
        chain = d.segments(rec["modelId"])
        segmented = bool(chain["segments"])
        verdict.registration = d.registration(rec["modelId"])
        token_uri = c.call(d.token.functions.tokenURI(token_id), d.abi)
        expected_uri = uri(raw_cid(bytes.fromhex(rec["metadataDigest"][2:])))
        meta = fetched("metadata", lambda: source.fetch_json(token_uri))
        if meta is None:
            return done()
        checks["metadata"] = Check(token_uri == expected_uri, f"{token_uri} fetched from {source.where}, "
                                   "its bytes hash to the digest the mint recorded")
        onnx = fetched("model file", lambda: source.fetch(reg["modelURI"]))
        if onnx is None:
            return done()
        onnx_ok = sha256_bytes(onnx) == reg["onnxHash"][2:]
        checks["model file"] = Check(onnx_ok, f"the ONNX at the registered {reg['modelURI']} "
                                     f"{'hashes' if onnx_ok else 'does not hash'} to the registered ONNX hash")
        fetch = fetch_segmented if segmented else fetch_circuit
        pkg = fetched("circuit", lambda: fetch(source, reg["metadataURI"], ws.fetched_circuits(), ws))
        if pkg is None:
            return done()
        model = atomic_write_bytes(pkg.path / "registered-model.onnx", onnx)
        checks.update(segmented_checks(reg, chain, pkg, model, c) if segmented else
                      registration_checks(reg, pkg, model, c))
        bundle_file = ws.fetched_bundle(rec["proofHash"])
        if fetched("proof bundle", lambda: source.fetch_to(rec["proofURI"], bundle_file)) is None:
            return done()
        loaded = fetched("proof bundle", lambda: _load_bundle(bundle_file, segmented))
        if loaded is None:
            return done()
        bundle = statement(loaded) if segmented else loaded
        index = rec["batchIndex"]
        outputs = packed_outputs(bundle, pkg, index)
        checks["bundle matches record"] = Check(
            "0x" + keccak(bundle.proof_bytes).hex() == rec["proofHash"]
            and bundle.circuit_id == pkg.circuit_id
            and "0x" + keccak(outputs).hex() == rec["outputsHash"],
            f"the bundle at {rec['proofURI']}: proof hash, circuit and outputs hash equal the on-chain record")
        checks.update(_metadata_checks(meta, rec, reg, d, "0x" + keccak(outputs).hex(), chain["segments"]))
        checks.update(_onchain_checks(d, rec, reg, chain, pkg, bundle, outputs))
        if rec["parent"]:
            checks["lineage"] = _lineage_check(d, rec, reg, pkg, bundle, source, ws)
        if int(rec["prover"], 16):
            checks["prover"] = _prover_check(rec, loaded.prover, bundle)
    local = check_segmented(loaded, pkg.spkg, pkg.segments) if segmented else check_bundle(bundle, pkg)
    checks["local verify"] = Check(local.valid, "; ".join(f"{k}: {v}" if segmented else v for k, v in local.checks.items())
                                   or local.reason)
    claimed = item_commitments(bundle, pkg)
    checks["input commitment"] = Check(index < len(claimed) and "0x" + claimed[index].hex() == rec["inputCommitment"],
                                       "the bundle's input commits to the recorded input commitment")
    measured = None
    if bundle.input is not None:
        checks["re-run model"], measured = _rerun(model, bundle, pkg, index)
    else:
        checks["re-run model"] = Check(True, "input is private: not re-run")
    checks["accuracy attestation"] = _attestation_check(reg, rec, meta, pkg, bundle, index,
                                                        measured if checks["re-run model"].ok else None)
    try:
        ok, detail = content_matches(meta, source, bundle, pkg, index) if local.valid else \
            (False, "not compared: the proof's outputs are not proven")
    except (ContentError, KeyError, TypeError) as exc:
        ok, detail = False, f"content could not be fetched or read: {exc}"
    checks["content"] = Check(ok, detail)
    return done()


def _attestation_check(reg: dict, rec: dict, meta: dict, pkg: CircuitPackage | SegmentedView,
                       bundle: ProofBundle, index: int, measured: float | None) -> Check:
    """The accuracy attestation: the registered fidelity against the published circuit's own
    measurement (compile's), the metadata's attributes and the token's recorded error against
    those recomputed from the package and bundle, and the token's own error against a
    re-measure (the registered float model re-run on the revealed input; ``measured`` is None
    where that re-run failed its own check, which names it)."""
    wrong = []
    figures = fidelity(pkg)
    if reg["fidelity"] != {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in figures.items()}:
        wrong.append(f"the registered fidelity {_fid_text(reg['fidelity'])} is not the published circuit's "
                     f"measurement {_fid_text(figures)}")
    said = {a.get("trait_type"): a.get("value") for a in meta.get("attributes") or [] if isinstance(a, dict)}
    expected = {a["trait_type"]: a["value"] for a in fidelity_attributes(bundle, pkg, index)}
    edited = sorted(k for k, v in expected.items() if said.get(k) != v)
    if edited:
        wrong.append(f"the metadata's {', '.join(edited)} differ from the package's and bundle's")
    proof_ppm = token_error_ppm(bundle, pkg, index)
    if rec["errorPpm"] != proof_ppm:
        wrong.append(f"the token's recorded error ({rec['errorPpm'] / 10_000:.4f} % of span) is not its "
                     f"proof's ({proof_ppm / 10_000:.4f} %)")
    claimed = said.get("proof max error")
    if measured is not None and isinstance(claimed, (int, float)) and abs(measured - claimed) > 1e-6 + 1e-3 * measured:
        wrong.append(f"the token's stated error {claimed:.4g} is not the re-measured {measured:.4g}")
    if wrong:
        return Check(False, "; ".join(wrong))
    return Check(True, f"registered fidelity {_fid_text(figures)} is the published circuit's measurement; this "
                       f"proof's max error {expected['proof max error']:.4g}" +
                       (" re-measured against the float model" if measured is not None else ""))


def _fid_text(f: dict) -> str:
    argmax = "" if f["argmaxBps"] == NO_ARGMAX else f", argmax {f['argmaxBps'] / 100:.2f} %"
    ref = f["referenceEngine"]
    ref = (bytes.fromhex(ref[2:]) if isinstance(ref, str) else ref).rstrip(bytes(1)).decode(errors="replace")
    return f"({f['errorPpm'] / 10_000:.4f} % of span on {f['samples']} held-out samples{argmax}, vs {ref})"


def _prover_check(rec: dict, prover: dict, bundle: ProofBundle) -> Check:
    """The prover the token names (and pays) signed the bundle's proof statement."""
    try:
        signed = signed_prover(prover, bundle)
    except VerificationError as exc:
        return Check(False, str(exc))
    ok = signed is not None and signed[0] == rec["prover"]
    return Check(ok, f"the bundle's prover signature is {rec['prover']}'s, the prover the token names" if ok
                 else f"the token names prover {rec['prover']}; the bundle's signature names "
                      f"{signed[0] if signed else 'no one'}")


def _lineage_check(d: Deployment, rec: dict, reg: dict, pkg: CircuitPackage | SegmentedView,
                   bundle: ProofBundle, source: Source, ws: Workspace) -> Check:
    """A parent named: proven when the token's model takes its input from the parent's model
    (the bundle's proven inputs are compared here with the parent's proven outputs, or the
    registered slice of them), declared otherwise."""
    parent = rec["parent"]
    try:
        lin = lineage.check(d, reg, parent, bundle, pkg, source, ws)
    except ContentError as exc:
        return Check(False, f"lineage unchecked: {exc}")
    if not lin.proven:
        return Check(not rec["lineageProven"], f"{LINEAGE_DECLARED}: token {parent} is named as its parent; its "
                                               "model does not take its input from the parent's, so nothing "
                                               "proves it was made from it")
    # the registration's lineage must be the one the published circuit was compiled with (its id binds it)
    start, parent_circuit = getattr(pkg, "input_from_start", 0), getattr(pkg, "input_from", None)
    registered = d.model(reg["inputFrom"])["circuitHash"][2:]
    same = reg["inputFromStart"] == start and registered == parent_circuit
    return Check(lin.holds and rec["lineageProven"] and same,
                 f"{LINEAGE_PROVEN if lin.holds else 'lineage broken'}: {lin.why} (its model's input is "
                 "registered as the parent model's output; the mint checked it on-chain)"
                 + ("" if same else f"; but the registration reads circuit {registered[:12]}'s outputs from position "
                    f"{reg['inputFromStart']}, the published circuit {str(parent_circuit)[:12]}'s from {start}"))


def _load_bundle(path: Path, segmented: bool) -> ProofBundle | SegmentedBundle:
    """The token's proof bundle, of the kind its registration proves."""
    loaded = load_any(path)
    if segmented != isinstance(loaded, SegmentedBundle):
        raise InvalidInputError(f"the proof bundle is {'not ' * segmented}a segmented model's, but the token's "
                                f"registration is {'not ' * (not segmented)}one")
    if segmented:
        try:
            statement(loaded)
        except (ValueError, TypeError) as exc:  # proof bytes that are not bytes
            raise InvalidInputError(f"the segmented proof bundle was edited or damaged ({exc})") from None
    return loaded


def _onchain_checks(d: Deployment, rec: dict, reg: dict, chain: dict, pkg: CircuitPackage | SegmentedView,
                    bundle: ProofBundle, outputs: bytes) -> dict[str, Check]:
    """ERC-7007 verify() of the token; for a segmented model also the registry's verdict on
    each segment and link."""
    c = d.chain
    if chain["segments"]:
        vka = [w for p, s in zip(pkg.segments, chain["segments"]) if s["vkaDigest"] != NO_VKA
               for w in vka_words(verifier_artifact(p, reusable=True))]
    else:
        vka = vka_words(verifier_artifact(pkg, reusable=True)) if reg["vkaDigest"] != NO_VKA else []
    prompt = encoding.prompt(bytes.fromhex(rec["modelId"][2:]), bytes.fromhex(rec["inputCommitment"][2:]))
    packed = encoding.aigc_proof(bundle.proof_bytes, bundle.instance_words, vka, rec["batchIndex"])
    onchain = c.call(d.token.functions.verify(prompt, outputs, packed), d.abi)
    out = {"on-chain verify": Check(onchain, "ERC-7007 verify() under the token's own registration, via its "
                                              "registered EZKL verifier" + "s" * bool(chain["segments"]))}
    if chain["segments"]:
        found, index = c.call(d.registry.functions.checkSegments(
            bytes.fromhex(rec["modelId"][2:]), bundle.proof_bytes, bundle.instance_words, vka), d.abi)
        n = len(chain["segments"])
        said = {0: f"each of the {n} segment proofs verifies on its registered verifier and all {n - 1} links hold",
                2: "the proofs, instances or VKA words do not fit the registered segments",
                3: f"{index} segment proofs for {n} segments", 4: f"link {index} -> {index + 1} is broken",
                5: f"segment {index}'s verifier rejects its proof"}
        out["on-chain segments"] = Check(found == 0, f"the registry's checkSegments: {said.get(found, found)}")
    return out
