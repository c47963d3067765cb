"""Proof-backed lineage: a token's proven input is its parent token's proven output, whole or
the slice its registration names (``inputFromStart``), checked as the mint checks it.

The chain keeps only a hash of each token's outputs, so a child that reads a slice of them
needs the parent's output instances themselves: they come from the parent mint's
ProofPublished event (or its proof bundle, by the CID its record names), and must hash to the
parent's recorded outputs hash."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak

from proofmint import encoding
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ContentError, InvalidInputError
from proofmint.prover.bundle import ProofBundle
from proofmint.prover.segmented import SegmentedBundle, load_any
from proofmint.store import Workspace
from proofmint.verifier.chain.records import Deployment
from proofmint.verifier.content.segmented import SegmentedView, statement
from proofmint.verifier.content.store import Source


def input_words(bundle: ProofBundle, pkg: CircuitPackage | SegmentedView) -> list[int]:
    """The proof's input instances (the registry fixes a lineage child's batch size at 1)."""
    start, count = pkg.layout.input_start, pkg.layout.input_count
    return bundle.instance_words[start:start + count]


@dataclass
class Lineage:
    """A child token's claim on its parent: whether its model takes its input from the parent's
    model, and if so whether the proven input is the parent's proven output there."""

    proven: bool  # the child's model's input is registered as the parent model's output
    holds: bool = False
    parent_outputs: list[int] | None = None  # what a sliced lineage's mint must carry
    why: str = ""


def check(d: Deployment, reg: dict, parent: int, bundle: ProofBundle, pkg: CircuitPackage | SegmentedView,
          source: Source, ws: Workspace) -> Lineage:
    """The lineage a mint of ``bundle`` under registration ``reg`` naming token ``parent``
    claims, checked the way ProvenanceToken checks it."""
    prec = d.token_record(parent)
    if int(reg["inputFrom"], 16) == 0 or prec["modelId"] != reg["inputFrom"]:
        return Lineage(False)
    start, mine = reg["inputFromStart"], input_words(bundle, pkg)
    parent_reg = d.model(prec["modelId"])
    whole = start == 0 and len(mine) == parent_reg["outputCount"]
    if whole:
        outputs = None
        holds = _hashes_to(mine, prec["outputsHash"])
    else:
        outputs = parent_outputs(d, parent, prec, parent_reg, source, ws)
        holds = outputs[start:start + len(mine)] == mine
    where = "" if whole else f" (its {len(mine)} output instances from position {start})"
    why = f"this proof's input {'is' if holds else 'is not'} token {parent}'s output{where}"
    return Lineage(True, holds, outputs, why)


def _hashes_to(words: list[int], outputs_hash: str) -> bool:
    """keccak256 of the words packed, as the token hashes outputs, is ``outputs_hash``."""
    return "0x" + keccak(b"".join(map(encoding.word, words))).hex() == outputs_hash


def parent_outputs(d: Deployment, parent: int, prec: dict, reg: dict, source: Source, ws: Workspace) -> list[int]:
    """Token ``parent``'s output instances (``prec``: its record, ``reg``: its model's
    registration), checked against its recorded outputs hash: from the ProofPublished event its
    mint emitted (the chain's own copy of the proven instances), else from its proof bundle by
    the CID its record names."""
    start = reg["outputStart"] + prec["batchIndex"] * reg["outputCount"]

    def outputs(instances: list[int]) -> list[int] | None:
        words = [int(w) for w in instances[start:start + reg["outputCount"]]]
        return words if _hashes_to(words, prec["outputsHash"]) else None

    try:
        logs = d.token.events.ProofPublished().get_logs(
            from_block=0, argument_filters={"firstToken": parent - prec["batchIndex"]})
    except Exception:  # web3 raises many types; a node that serves no logs that far back: the bundle
        logs = []
    for log in logs:
        if (words := outputs(list(log["args"]["instances"]))) is not None:
            return words
    path = ws.fetched_bundle(prec["proofHash"])
    try:
        loaded = load_any(source.fetch_to(prec["proofURI"], path))
        words = outputs((statement(loaded) if isinstance(loaded, SegmentedBundle) else loaded).instance_words)
    except (ContentError, InvalidInputError, ValueError, TypeError, KeyError) as exc:
        raise ContentError(f"token {parent}'s outputs are needed to check a slice of them: the chain's node "
                           f"served no ProofPublished event for it, and its proof bundle ({prec['proofURI']}) "
                           f"can't be read ({exc}) — set PROOFMINT_GATEWAY to a gateway that serves it") from None
    if words is None:
        raise ContentError(f"the proof bundle at {prec['proofURI']} does not hold token {parent}'s recorded outputs")
    return words
