"""Proof-backed lineage: a token's proven input is its parent token's proven output, whole or
the slice its registration names (``inputFromStart``), checked as the mint checks it.

The chain keeps only a hash of each token's outputs, so a child that reads a slice of them
needs the parent's output instances themselves: they come from the parent's proof bundle (by
the CID its record names), and must hash to the parent's recorded outputs hash."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak

from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ContentError, InvalidInputError
from proofmint.prover.bundle import ProofBundle
from proofmint.prover.segmented import SegmentedBundle, load_any
from proofmint.store import Workspace
from proofmint.verifier.chain.records import Deployment
from proofmint.verifier.content.segmented import SegmentedView, statement
from proofmint.verifier.content.store import Source


def packed(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(32, "big") for w in words)


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
    whole = start == 0 and len(mine) == d.model(prec["modelId"])["outputCount"]
    if whole:
        outputs = None
        holds = "0x" + keccak(packed(mine)).hex() == prec["outputsHash"]
    else:
        outputs = parent_outputs(d, parent, prec, source, ws)
        holds = outputs[start:start + len(mine)] == mine
    where = "" if whole else f" (its {len(mine)} output instances from position {start})"
    why = f"this proof's input {'is' if holds else 'is not'} token {parent}'s output{where}"
    return Lineage(True, holds, outputs, why)


def parent_outputs(d: Deployment, parent: int, prec: dict, source: Source, ws: Workspace) -> list[int]:
    """Token ``parent``'s output instances, from its proof bundle, checked against its record."""
    path = ws.fetched_bundle(prec["proofHash"])
    try:
        loaded = load_any(source.fetch_to(prec["proofURI"], path))
    except (ContentError, InvalidInputError) as exc:
        raise ContentError(f"token {parent}'s outputs are needed to check a slice of them, and its proof bundle "
                           f"({prec['proofURI']}) can't be read: {exc} — set PROOFMINT_GATEWAY to a gateway "
                           "that serves it") from None
    bundle = statement(loaded) if isinstance(loaded, SegmentedBundle) else loaded
    reg = d.model(prec["modelId"])
    start = reg["outputStart"] + prec["batchIndex"] * reg["outputCount"]
    words = bundle.instance_words[start:start + reg["outputCount"]]
    if "0x" + keccak(packed(words)).hex() != prec["outputsHash"]:
        raise ContentError(f"the proof bundle at {prec['proofURI']} does not hold token {parent}'s recorded outputs")
    return words

