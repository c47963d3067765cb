"""``proofmint export-car``: everything a token refers to, as one CAR file for a pinning service.

A pinning service (or ``ipfs dag import``) takes a CARv1; its roots are the token's content
(metadata, rendering, outputs, proof bundle) and its model's (ONNX, circuit manifest and
files — a segmented model's every segment —, training-data manifest), so pinning the one file
keeps the whole asset fetchable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from proofmint.store import Workspace

from proofmint.verifier.content.publish import CIRCUIT_FILES
from proofmint.verifier.content.segmented import is_segmented
from proofmint.verifier.chain.client import connect
from proofmint.verifier.content.store import ContentStore, Source, cid_from_uri
from proofmint.verifier.chain.records import deployment


@dataclass(frozen=True)
class CarExport:
    car: str
    roots: list[str]
    blocks: int
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def export_car(token_id: int, *, out: str | Path, rpc_url: str | None = None, gateway: str | None = None,
               token: str | None = None, workspace: str | Path | Workspace | None = None) -> CarExport:
    """Write a CAR of every file token ``token_id`` and its model refer to (fetched by CID,
    checked, and kept in this workspace's store first)."""
    ws = Workspace.resolve(workspace)
    source, store = Source.of(ws, gateway), ContentStore(ws)
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        d = deployment(c, token)
        rec = d.token_record(token_id)
        reg = d.model(rec["modelId"])
        uris = [c.call(d.token.functions.tokenURI(token_id), d.abi), rec["proofURI"], reg["modelURI"],
                reg["metadataURI"]] + ([reg["trainingDataURI"]] if reg["trainingDataURI"] else [])
    meta = source.fetch_json(uris[0])
    uris += [meta["image"], meta["aigc_data"], meta["outputs"]["uri"]]
    circuit = source.fetch_json(reg["metadataURI"])
    parts = [circuit]
    if is_segmented(circuit):  # its segments.json and model, and every segment's circuit
        uris += [*circuit["files"].values(), *circuit["segments"]]
        parts = [source.fetch_json(u) for u in circuit["segments"]]
    uris += [part["files"][name] for part in parts for name in CIRCUIT_FILES]
    cids = list(dict.fromkeys(cid_from_uri(u) for u in uris))
    for cid in cids:
        if not store.has(cid):
            store.add_bytes(source.fetch(cid))
    result = store.export_car(cids, Path(out))
    return CarExport(result["car"], result["roots"], result["blocks"], Path(out).stat().st_size)
