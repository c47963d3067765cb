"""``proofmint mint``: a verified inference becomes a provenance token (commit, then reveal).

The proof bundle is stored content-addressed (by the proof hash and inference id, which
the token records on-chain) *before* the mint is sent, so a minted token can always find its
bundle even if proofmint is killed before it writes the token's record.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_utils import keccak
from web3.logs import DISCARD

from proofmint import encoding, progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError, NotFoundError
from proofmint.faults import failpoint
from proofmint.prover.bundle import ProofBundle, load_bundle
from proofmint.store import Workspace, atomic_write_json

from .client import connect
from .deploy import vka_for
from .records import Deployment, deployment


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


def item_commitments(bundle: ProofBundle, pkg: CircuitPackage) -> list[bytes]:
    """Each real inference's commitment to the input the bundle *claims*, computed the way the
    token computes it from the proven instances; a bundle whose input was edited gets others."""
    return encoding.item_commitments(bundle.input, pkg.visibility, pkg.input_scale, pkg.batch_size,
                                     bundle.count)


def mint(proof: str | Path, *, to: str | None = None, parent: int = 0, proof_uri: str | None = None,
         rpc_url: str | None = None, workspace: str | Path | Workspace | None = None) -> MintResult:
    """Mint the token of a proven inference: commit, then reveal with the proof (two txs)."""
    ws = Workspace.resolve(workspace)
    bundle = load_bundle(proof)
    pkg = package_mod.load(ws, bundle.circuit_id)
    proof_bytes, instances = bundle.proof_bytes, bundle.instance_words
    commitment = encoding.mint_commitment(item_commitments(bundle, pkg), pkg.batch_size)
    with connect(rpc_url=rpc_url, workspace=ws) as c, ws.lock(f"signer-{c.address}"):
        d = deployment(c)
        entry = d.entry(bundle.circuit_id)
        if entry is None:
            raise NotFoundError(f"circuit {bundle.circuit_id[:16]} is not deployed on chain "
                                f"{c.chain_id} — run `proofmint deploy {bundle.circuit_id[:16]}`")
        model_id = bytes.fromhex(entry["model_id"][2:])
        token = d.token
        inference_id = c.call(token.functions.inferenceIdOf(model_id, instances, proof_bytes), d.abi)
        store = ws.minted_bundle(keccak(proof_bytes).hex(), inference_id.hex())
        if not store.exists():  # before any transaction: a minted token always finds its bundle
            atomic_write_json(store, bundle.to_dict())
        existing = c.call(token.functions.tokenOfInference(inference_id), d.abi)
        if existing:
            return _recover_or_refuse(d, existing, bundle, store, commitment)
        salt = os.urandom(32)
        request = {"modelId": model_id, "to": to or c.address, "parent": parent,
                   "inputCommitment": commitment, "salt": salt,
                   "proofURI": proof_uri or f"proofmint://{store.stem}", "count": bundle.count}
        mint_fn = token.functions.mint(request, proof_bytes, instances, vka_for(pkg, entry))
        with progress.step("commit"):
            c1 = c.transact(token.functions.commit(
                c.call(token.functions.commitmentFor(c.address, inference_id, salt), d.abi)), d.abi)
        failpoint("mint:after-commit")
        what = f"mint {bundle.count} tokens" if bundle.count > 1 else "mint"
        with progress.step(f"{what} (verify proof on-chain)"):
            r = c.transact(mint_fn, d.abi)
        failpoint("mint:before-record")
        ids = [e["args"]["tokenId"] for e in token.events.Minted().process_receipt(r, errors=DISCARD)]
        result = MintResult(ids[0], "0x" + bytes(r["transactionHash"]).hex(),
                            {"commit": c1["gasUsed"], "mint": r["gasUsed"]}, c.chain_id,
                            bundle.circuit_id, "0x" + commitment.hex(), request["to"], ids)
        _write_record(d, result, store)
        return result


def _write_record(d: Deployment, result: MintResult, store: Path) -> None:
    """One local record per token (its index in the batch is its place in token_ids)."""
    for token_id in result.token_ids:
        atomic_write_json(d.chain.token_record_file(token_id),
                          result.to_dict() | {"token_id": token_id, "bundle": str(store),
                                              "recorded_at": time.time()})


def _recover_or_refuse(d: Deployment, token_id: int, bundle: ProofBundle, store: Path,
                       commitment: bytes) -> MintResult:
    """The inference is minted already. If we minted it and lost the local record (killed after
    the mint landed), write the record again; otherwise refuse the double mint."""
    c = d.chain
    rec = d.token_record(token_id)
    ours = rec["creator"] == c.address and store == c.ws.minted_bundle(rec["proofHash"], rec["inferenceId"])
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
