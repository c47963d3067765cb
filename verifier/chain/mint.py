"""``proofmint mint``: a verified inference becomes a provenance token (commit, then reveal).

The reveal waits until the commitment is the token's ``minCommitAge`` blocks old, and carries
a max fee that covers the base fee after that many full blocks: whoever wants to take it
from the mempool must fill every one of those blocks (SECURITY.md: the cost, measured).

The proof bundle is stored content-addressed (by the proof hash and inference id, which
the token records on-chain) *before* the mint is sent, so a minted token can always find its
bundle even if proofmint is killed before it writes the token's record. So is each token's
content (rendered output, ERC-7007 metadata) in the content store: the mint records the
metadata's digest, and the token's URI is its CID.

A segmented model's bundle mints the same way, as one statement (``content.segmented``): every
segment's proof and instances in the one reveal, checked on their verifiers and links by the
registry, one token; the gas each segment's verifier takes alone is reported beside the mint's.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from eth_utils import keccak
from web3.logs import DISCARD

from proofmint import encoding, progress
from proofmint.circuits import package as package_mod, segmented as segmented_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError, NotFoundError, TransactionRevertedError, VerificationError
from proofmint.faults import failpoint
from proofmint.prover.bundle import ProofBundle
from proofmint.prover.segmented import SegmentedBundle, load_any
from proofmint.store import Workspace, atomic_write_json, read_json

from proofmint.verifier.evm import verifier_artifact
from proofmint.verifier.content.publish import Provenance, TokenContent, token_content, token_error_ppm
from proofmint.verifier.content.segmented import SegmentedView, statement
from proofmint.verifier.chain.client import Chain, chain_error, connect
from proofmint.verifier.content.store import ContentStore, Source, cid_from_uri, uri
from proofmint.verifier.chain import lineage
from proofmint.verifier.chain.deploy import vka_for
from proofmint.verifier.chain.prover_sign import sign, signed_prover
from proofmint.verifier.chain.records import Deployment, deployment


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
    token_uris: list[str] = field(default_factory=list)  # ipfs:// of each token's metadata
    images: list[str] = field(default_factory=list)  # each token's rendered image, in the content store

    def to_dict(self) -> dict:
        return asdict(self)


def item_commitments(bundle: ProofBundle, pkg: CircuitPackage | SegmentedView) -> list[bytes]:
    """Each real inference's commitment to the input the bundle *claims*, computed the way the
    token computes it from the proven instances; a bundle whose input was edited gets others."""
    return encoding.item_commitments(bundle.input, pkg.visibility, pkg.input_scale, pkg.batch_size,
                                     bundle.count)


def mint(proof: str | Path, *, to: str | None = None, parent: int = 0, proof_uri: str | None = None,
         rpc_url: str | None = None, workspace: str | Path | Workspace | None = None,
         resume: bool = False, as_prover: bool = False) -> MintResult:
    """Mint the token of a proven inference: commit, then reveal with the proof (two txs).

    ``resume``: a mint this signer already made of this bundle answers with its tokens instead
    of refusing (the prover node re-running a mint interrupted by a kill). A bundle that names
    its prover (signed: ``prover_sign``) mints naming them, and pays them the share the model's
    license reserves; ``as_prover``: the signer proved it (the node), and signs a bundle that
    names no prover."""
    ws = Workspace.resolve(workspace)
    loaded = load_any(proof)
    bundle, pkg = statement_of(ws, loaded)
    proof_bytes, instances = bundle.proof_bytes, bundle.instance_words
    commitment = encoding.mint_commitment(item_commitments(bundle, pkg), pkg.batch_size)
    with connect(rpc_url=rpc_url, workspace=ws) as c, ws.lock(f"signer-{c.address}"):
        if as_prover and not loaded.prover.get("signature"):
            loaded.prover = sign(loaded.prover, bundle, c.account)
        prover = signed_prover(loaded.prover, bundle)  # a swapped prover: refused before any transaction
        d = deployment(c)
        entry = d.entry(bundle.circuit_id)
        if entry is None:
            raise NotFoundError(f"circuit {bundle.circuit_id[:16]} is not deployed on chain "
                                f"{c.chain_id} — run `proofmint deploy {bundle.circuit_id[:16]}`")
        model_id = bytes.fromhex(entry["model_id"][2:])
        token = d.token
        inference_id = c.call(token.functions.inferenceIdOf(model_id, instances), d.abi)
        store = ws.minted_bundle(keccak(proof_bytes).hex(), inference_id.hex())
        if not store.exists():  # before any transaction: a minted token always finds its bundle
            atomic_write_json(store, loaded.to_dict())
        existing = c.call(token.functions.tokenOfInference(inference_id), d.abi)
        if existing:
            return _recover_or_refuse(d, existing, bundle, store, commitment, resume)
        parent_outputs = _lineage(d, entry["model_id"], parent, bundle, pkg, ws) if parent else []
        alone = segment_gas(c, pkg, entry, loaded) if isinstance(loaded, SegmentedBundle) else []
        with progress.step("publish content (proof bundle, rendered outputs, metadata)"):
            proof_uri, tokens = publish_tokens(d, bundle, pkg, store, model_id=entry["model_id"],
                                               parent=parent, proof_uri=proof_uri)
        salt = os.urandom(32)
        request = {"modelId": model_id, "to": to or c.address, "parent": parent,
                   "inputCommitment": commitment, "salt": salt, "proofURI": proof_uri,
                   "count": bundle.count, "metadata": [t.digest for t in tokens],
                   "errorPpm": [token_error_ppm(bundle, pkg, i) for i in range(bundle.count)],
                   "parentOutputs": parent_outputs}
        vka = vka_for(pkg, entry)
        mint_fn = token.functions.mintWithProver(request, proof_bytes, instances, vka, *prover) if prover \
            else token.functions.mint(request, proof_bytes, instances, vka)
        with progress.step("commit"):
            c1 = c.transact(token.functions.commit(
                c.call(token.functions.commitmentFor(c.address, inference_id, salt), d.abi)), d.abi)
        failpoint("mint:after-commit")
        age = await_commit_age(d, c1)
        what = f"mint {bundle.count} tokens" if bundle.count > 1 else "mint"
        with progress.step(f"{what} (verify proof on-chain)"):
            r = c.transact(mint_fn, d.abi, fees=c.fees(age))
        failpoint("mint:before-record")
        ids = [e["args"]["tokenId"] for e in token.events.Minted().process_receipt(r, errors=DISCARD)]
        gas = {"commit": c1["gasUsed"], "mint": r["gasUsed"]}
        gas |= {f"verify_segment_{i}": g for i, g in enumerate(alone)}
        result = MintResult(ids[0], "0x" + bytes(r["transactionHash"]).hex(), gas, c.chain_id,
                            bundle.circuit_id, "0x" + commitment.hex(), request["to"], ids,
                            [uri(t.metadata_cid) for t in tokens],
                            [str(ContentStore(ws).path(cid_from_uri(t.metadata["image"]))) for t in tokens])
        _write_record(d, result, store)
        return result


def _lineage(d: Deployment, model_id: str, parent: int, bundle: ProofBundle,
             pkg: CircuitPackage | SegmentedView, ws: Workspace) -> list[int]:
    """Refuse, before any transaction, a child whose model's input is from the parent token's
    model but whose proven input is not that token's proven output (the mint would revert with
    ProvenanceTokenLineageMismatch); returns the parent's outputs a sliced lineage's mint carries.
    A parent the chain refuses for another reason is left to the chain's own error."""
    try:
        lin = lineage.check(d, d.model(model_id), parent, bundle, pkg, Source.of(ws), ws)
    except TransactionRevertedError:  # no such token: the mint names it
        return []
    if lin.proven and not lin.holds:
        raise VerificationError(f"{lin.why} — it was not made from token {parent}: prove this model on that "
                                "token's output, or mint without --parent")
    return lin.parent_outputs or []


def await_commit_age(d: Deployment, commit_receipt: dict) -> int:
    """Wait until a reveal sent now lands ``minCommitAge`` blocks after its commit (anvil mines
    them at once); returns that age."""
    age = d.chain.call(d.token.functions.minCommitAge(), d.abi)
    with progress.step(f"let the commitment age {age} blocks"):
        d.chain.wait_for_block(commit_receipt["blockNumber"] + age)
    return age


def statement_of(ws: Workspace, loaded: ProofBundle | SegmentedBundle
                 ) -> tuple[ProofBundle, CircuitPackage | SegmentedView]:
    """What a bundle mints, and what it was proven with: a circuit's bundle and package, or a
    segmented model's chain as one statement and its segmented package; refused before any
    transaction when it does not fit that package."""
    if not isinstance(loaded, SegmentedBundle):
        pkg = package_mod.load(ws, loaded.circuit_id)
        _check_fits(loaded, pkg)
        return loaded, pkg
    spkg = segmented_mod.load(ws, loaded.circuit_id)
    if spkg is None:
        raise NotFoundError(f"no segmented circuit {loaded.circuit_id[:16]} in {ws.root} — run `proofmint "
                            "compile` there first (or pass the --workspace it was compiled in)")
    view = SegmentedView(spkg, spkg.packages(ws, verify_only=True))
    given = [(s.circuit_id, len(s.instances)) for s in loaded.segments]
    expected = [(p.circuit_id, p.layout.instance_count) for p in view.segments]
    if given != expected:
        raise VerificationError(f"the bundle's {len(given)} segment proofs are not segmented circuit "
                                f"{spkg.circuit_id[:16]}'s {len(expected)} segments, in its order, with their "
                                "instance counts — it is not a proof of this model")
    chain = statement(loaded)
    _check_fits(chain, view)
    return chain, view


def segment_gas(c: Chain, view: SegmentedView, entry: dict, bundle: SegmentedBundle) -> list[int]:
    """The gas each segment's verifier takes to verify its proof alone (a transaction of its
    own: its calldata and base cost included); the mint pays for them all in one. Asked before
    any transaction: a segment its verifier rejects is refused here, by its index."""
    out = []
    for i, (pkg, seg, proof) in enumerate(zip(view.segments, entry["segments"], bundle.segments)):
        art = verifier_artifact(pkg, reusable=seg["kind"] == "reusable")
        args = [bytes(proof.ezkl_proof["proof"]), encoding.uints(proof.instances)] + \
            ([vka_for(pkg, seg)] if seg["kind"] == "reusable" else [])
        fn = c.contract(seg["address"], art["abi"]).functions.verifyProof(*args)
        try:
            out.append(fn.estimate_gas({"from": c.address}))
        except Exception as exc:  # web3 raises many types here: chain_error sorts them
            error = chain_error(f"segment {i}'s verification", exc, art["abi"], c.rpc_url)
            if isinstance(error, TransactionRevertedError):
                raise VerificationError(f"segment {i}'s verifier {seg['address']} rejects its proof — the bundle "
                                        "is not a valid proof of this model; nothing was sent") from None
            raise error from None
    return out


def _check_fits(bundle: ProofBundle, pkg: CircuitPackage | SegmentedView) -> None:
    """A bundle whose instances or outputs are not the circuit's shape can't be rendered, nor
    verify: refused before any transaction. (Anything subtler is the chain's to refuse.)"""
    sizes = [math.prod(s) * pkg.batch_size for s in pkg.output_shapes]
    if len(bundle.instances) != pkg.layout.instance_count or [len(o) for o in bundle.outputs] != sizes:
        raise VerificationError(f"the bundle does not fit circuit {pkg.circuit_id[:16]} ({len(bundle.instances)} "
                                f"instances, outputs of {[len(o) for o in bundle.outputs]}; the circuit has "
                                f"{pkg.layout.instance_count} and {sizes}) — it is not a proof of this circuit")


def publish_tokens(d: Deployment, bundle: ProofBundle, pkg: CircuitPackage | SegmentedView, bundle_file: Path,
                   *, model_id: str, parent: int = 0, proof_uri: str | None = None,
                   creator: str | None = None) -> tuple[str, list[TokenContent]]:
    """Publish a proof's bundle and each of its tokens' content (rendered outputs, ERC-7007
    metadata) to the content store; returns the proof URI and each token's content (whose
    ``digest`` the mint records). ``model_id``: the registration the tokens are minted under."""
    c = d.chain
    content = ContentStore(c.ws)
    proof_uri = proof_uri or uri(content.add_file(bundle_file))
    reg = d.model(model_id)
    chain = {"segments": tuple(p.circuit_id for p in pkg.segments), "link": pkg.spkg.link} \
        if isinstance(pkg, SegmentedView) else {}
    prov = Provenance(c.chain_id, d.token.address, d.registry.address, model_id, pkg.model_id,
                      reg["modelURI"], pkg.circuit_id, reg["metadataURI"], reg["verifier"],
                      creator or c.address, parent, proof_uri, "0x" + keccak(bundle.proof_bytes).hex(), **chain)
    items = ["0x" + x.hex() for x in item_commitments(bundle, pkg)]
    return proof_uri, [token_content(content, bundle, pkg, i, prov, items[i]) for i in range(bundle.count)]


def _write_record(d: Deployment, result: MintResult, store: Path) -> None:
    """One local record per token (its index in the batch is its place in token_ids)."""
    for token_id in result.token_ids:
        atomic_write_json(d.chain.token_record_file(token_id),
                          result.to_dict() | {"token_id": token_id, "bundle": str(store),
                                              "recorded_at": time.time()})


def _recover_or_refuse(d: Deployment, token_id: int, bundle: ProofBundle, store: Path,
                       commitment: bytes, resume: bool) -> MintResult:
    """The inference is minted already. If we minted it and lost the local record (killed after
    the mint landed), write the record again; otherwise refuse the double mint (or, resuming,
    answer with what we minted)."""
    c = d.chain
    rec = d.token_record(token_id)
    ours = rec["creator"] == c.address and store == c.ws.minted_bundle(rec["proofHash"], rec["inferenceId"])
    if ours and resume and c.token_record_file(token_id).exists():
        saved = read_json(c.token_record_file(token_id))
        return MintResult(**{f.name: saved[f.name] for f in fields(MintResult) if f.name in saved})
    if not ours or c.token_record_file(token_id).exists():
        raise ChainError(f"this inference is already token {token_id} — the same inference can't "
                         "be minted twice")
    progress.note(f"token {token_id} was minted by you but not recorded locally (interrupted run): "
                  "recording it now")
    result = MintResult(token_id, "", {}, c.chain_id, bundle.circuit_id, "0x" + commitment.hex(),
                        c.call(d.token.functions.ownerOf(token_id), d.abi),
                        list(range(token_id, token_id + rec["batchCount"])))
    _write_record(d, result, store)
    return result
