"""An asset's content: what a token points at, published by CID, and fetched back to check.

At deploy the circuit is published (model ONNX, package, settings, verifying key, SRS) with
the training-data manifest; at mint, per token, the proof bundle, the output content, its
rendering and the ERC-7007 metadata. The chain keeps only CIDs and hashes (SECURITY.md says
what binds what); everything here is plain files any IPFS node can pin.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eth_utils import is_address, keccak, to_checksum_address

from proofmint import encoding
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.circuits.witness import split_items
from proofmint.errors import ContentError, UsageError
from proofmint.models.exporter import NO_ADDRESS, TRAINING_FORMAT
from proofmint.prover.bundle import ProofBundle
from proofmint.store import Workspace, read_json, sha256_file

from proofmint.verifier.content import render
from proofmint.verifier import toolchain
from proofmint.verifier.content.store import CHUNK, ContentStore, Source, raw_digest, uri

CIRCUIT_FORMAT = "proofmint/circuit/v1"
OUTPUTS_FORMAT = "proofmint/outputs/v1"
ASSET_FORMAT = "proofmint/asset/v1"
# What a circuit publishes, by the name its manifest gives it, and its file in a package folder.
CIRCUIT_FILES = {"package": "package.json", "settings": "settings.json", "vk": "vk.key",
                 "onnx": "model.onnx", "srs": "kzg.srs"}
SCHEMA = Path(__file__).with_name("erc7007_metadata.schema.json")


# ---- the circuit ----

@dataclass(frozen=True)
class CircuitContent:
    uri: str  # the manifest: the registration's metadataURI
    model_uri: str  # the ONNX file: the registration's modelURI
    cids: dict[str, str]  # CIRCUIT_FILES name -> CID


def publish_circuit(pkg: CircuitPackage, store: ContentStore) -> CircuitContent:
    """Put what a verifier needs of the circuit into the store, and a manifest naming it."""
    paths = {name: pkg.path / f for name, f in CIRCUIT_FILES.items() if name != "srs"} | {"srs": pkg.srs}
    cids = dict(zip(paths, store.add_files(list(paths.values()))))
    manifest = {"format": CIRCUIT_FORMAT, "circuit_id": pkg.circuit_id,
                "files": {name: uri(cid) for name, cid in cids.items()}}
    return CircuitContent(uri(store.add_json(manifest)), uri(cids["onnx"]), cids)


def fetch_circuit(source: Source, circuit_uri: str, root: Path, ws: Workspace) -> CircuitPackage:
    """A verify-only package from a published circuit, in ``root/<circuit_id>``; every file is
    checked against its CID, the package's own digests and the SRS digest it names."""
    manifest = source.fetch_json(circuit_uri)
    if manifest.get("format") != CIRCUIT_FORMAT or not isinstance(manifest.get("files"), dict):
        raise ContentError(f"{circuit_uri} is not a proofmint circuit manifest")
    circuit_id = str(manifest.get("circuit_id", ""))
    if not re.fullmatch(r"[0-9a-f]{64}", circuit_id):
        raise ContentError(f"{circuit_uri} names no circuit id")
    dest = root / circuit_id
    for name, filename in CIRCUIT_FILES.items():
        if name not in manifest["files"]:
            raise ContentError(f"{circuit_uri} does not publish the circuit's {name}")
        source.fetch_to(manifest["files"][name], dest / filename)
    pkg = package_mod.load(ws, circuit_id, root=root, verify_only=True)
    srs = dest / CIRCUIT_FILES["srs"]
    if sha256_file(srs) != pkg.srs_sha256:
        raise ContentError(f"the SRS {circuit_uri} publishes is not the one circuit {circuit_id[:16]} "
                           "was set up with")
    pkg.srs_path = str(srs)
    return pkg


# ---- training data ----

@dataclass(frozen=True)
class TrainingData:
    root: bytes  # OpenZeppelin StandardMerkleTree root over (path, sha256, contributor)
    uri: str  # ipfs:// of the manifest
    contributors: list[str]  # the addresses named, in manifest order, without repeats


def _merkle_root(manifest: Path) -> bytes:
    out = toolchain.run_script("merkle.mjs", str(manifest), what=f"the Merkle tree of {manifest}")
    return bytes.fromhex(json.loads(out)["root"][2:])


def check_training_manifest(manifest: dict, where: str) -> list[str]:
    """The manifest's contributors with an address; refuses a manifest the root can't cover."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("format") != TRAINING_FORMAT or not isinstance(files, list) or not files:
        raise UsageError(f"{where} is not a training-data manifest ({TRAINING_FORMAT}, with a "
                         "non-empty `files` list) — `proofmint models export` writes one")
    contributors: list[str] = []
    for i, f in enumerate(files):
        ok = (isinstance(f, dict) and isinstance(f.get("path"), str)
              and re.fullmatch(r"0x[0-9a-f]{64}", str(f.get("sha256", ""))) and is_address(f.get("contributor")))
        if not ok:
            raise UsageError(f"{where}: files[{i}] needs `path`, `sha256` (0x + 64 hex) and "
                             "`contributor` (an address; 0x00..00 for none)")
        who = to_checksum_address(f["contributor"])
        if who != to_checksum_address(NO_ADDRESS) and who not in contributors:
            contributors.append(who)
    return contributors


def publish_training(manifest_path: Path, store: ContentStore) -> TrainingData:
    manifest = read_json(manifest_path)
    contributors = check_training_manifest(manifest, str(manifest_path))
    return TrainingData(_merkle_root(manifest_path), uri(store.add_file(manifest_path)), contributors)


# ---- one token's content ----

@dataclass(frozen=True)
class Provenance:
    """What a token's metadata says about where it comes from; all of it is on-chain too."""

    chain_id: int
    token_contract: str
    registry: str
    model_id: str  # the registration id (0x-hex)
    onnx_sha256: str
    model_uri: str
    circuit_id: str
    circuit_uri: str
    verifier: str
    creator: str
    parent: int
    proof_uri: str
    proof_hash: str  # keccak256 of the proof bytes, as the token records it
    segments: tuple[str, ...] = ()  # a segmented model's segment circuits, in order
    link: str = ""  # and how its cuts are linked ("hashed" or "public")


@dataclass(frozen=True)
class TokenContent:
    metadata: dict
    metadata_cid: str
    digest: bytes  # sha256 of the metadata JSON: what the mint records, tokenURI's CID
    rendering: render.Rendering


def item_outputs(bundle: ProofBundle, pkg: CircuitPackage, index: int) -> list[np.ndarray]:
    """Item ``index``'s decoded outputs, one array per output tensor (in its shape)."""
    flat = split_items([np.asarray(o, dtype=np.float64) for o in bundle.outputs], pkg.batch_size)[index]
    sizes = [math.prod(s) for s in pkg.output_shapes]
    return [part.reshape(shape) for part, shape in
            zip(np.split(flat, np.cumsum(sizes)[:-1]), pkg.output_shapes)]


def token_error(bundle: ProofBundle, pkg: CircuitPackage, index: int) -> float:
    """This proof's own error: max |proven output - the float model's| of item ``index`` (the
    bundle's reference outputs: the reference engine's on the same input)."""
    out, ref = (split_items([np.asarray(o, dtype=np.float64) for o in outs], pkg.batch_size)[index]
                for outs in (bundle.outputs, bundle.reference_outputs))
    return float(np.abs(out - ref).max())


def token_error_ppm(bundle: ProofBundle, pkg: CircuitPackage, index: int) -> int:
    """:func:`token_error` in millionths of the scale compile judged the circuit on (the
    registration's ``errorPpm`` is on the same scale), rounded up: the token's on-chain figure."""
    return math.ceil(token_error(bundle, pkg, index) / _judged_on(pkg) * 1_000_000 - 1e-9)


def _judged_on(pkg: CircuitPackage) -> float:
    q = pkg.quantization
    return q.get("judged_on") or q.get("output_range") or 1.0  # older packages: the span


def fidelity_attributes(bundle: ProofBundle, pkg: CircuitPackage, index: int) -> list[dict]:
    """The accuracy attestation as ERC-7007 metadata attributes: the circuit's measured fidelity
    (compile's, on held-out samples; the registration carries the same figures) and this
    token's own proof's error against the float model."""
    q = pkg.quantization
    err = token_error(bundle, pkg, index)
    rows = [("circuit max error (% of span)", round(100 * q.get("relative_max_error", 0.0), 6)),
            ("circuit held-out samples", int(q.get("samples", 0))), ("fidelity reference", pkg.reference),
            ("circuit held-out samples sha256", q.get("samples_digest", "not recorded")),
            ("proof max error", round(err, 9)), ("proof max error (% of span)", round(100 * err / _judged_on(pkg), 6))]
    if "argmax_agreement" in q:
        rows.insert(1, ("circuit argmax agreement (%)", round(100 * q["argmax_agreement"], 4)))
    return [{"trait_type": k, "value": v} for k, v in rows]


def packed_outputs(bundle: ProofBundle, pkg: CircuitPackage, index: int) -> bytes:
    """Item ``index``'s output instances as the token packs them (keccak: its outputs hash)."""
    return b"".join(encoding.word(v) for v in pkg.layout.outputs_of(bundle.instance_words, index))


def outputs_document(bundle: ProofBundle, pkg: CircuitPackage, index: int) -> dict:
    return {"format": OUTPUTS_FORMAT, "circuit_id": pkg.circuit_id, "batch_index": index,
            "shapes": pkg.output_shapes, "scales": pkg.output_scales,
            "outputs": [o.ravel().tolist() for o in item_outputs(bundle, pkg, index)]}


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def prompt_of(bundle: ProofBundle, pkg: CircuitPackage, index: int, commitment: str) -> str:
    """ERC-7007's prompt: the input itself when it is public, else what the proof commits to."""
    if pkg.visibility.input_public and bundle.input is not None:
        return json.dumps(np.asarray(bundle.input).reshape(pkg.batch_size, -1)[index].tolist())
    kind = "hashed (Poseidon)" if pkg.visibility.input_hashed else "private"
    return f"{kind} input, commitment {commitment}"


def token_content(store: ContentStore, bundle: ProofBundle, pkg: CircuitPackage, index: int,
                  prov: Provenance, input_commitment: str) -> TokenContent:
    """Render and publish one token's content; returns its ERC-7007 metadata."""
    outputs_json = _json_bytes(outputs_document(bundle, pkg, index))
    outputs_hash = "0x" + keccak(packed_outputs(bundle, pkg, index)).hex()
    title = f"{pkg.task} model {pkg.model_id[:8]}"
    rendering = render.render(item_outputs(bundle, pkg, index), pkg.output_shapes, pkg.task, title,
                              outputs_json)
    outputs_cid, data_cid, image_cid = store.add_blobs([outputs_json, rendering.data, rendering.image])
    kind = rendering.aigc_type
    checked = (f"checked on-chain as {len(prov.segments)} linked segment proofs (each by its registered "
               "verifier, and every link between them)" if prov.segments else
               "checked on-chain by the model's registered verifier")
    metadata = {
        "name": f"proofmint {kind} {outputs_hash[2:10]} from model {pkg.model_id[:8]}",
        "description": (f"A verified AI inference: the {kind} output of model {pkg.model_id[:12]} "
                        f"(ONNX sha256), proven with EZKL (Halo2, KZG) and {checked} on chain "
                        f"{prov.chain_id} before this token was minted. The proof's outputs decode to within "
                        f"{pkg.quantization.get('max_abs_error', 0.0):.3g} of the float model's "
                        f"on held-out samples."),
        "image": uri(image_cid),
        "prompt": prompt_of(bundle, pkg, index, input_commitment),
        "aigc_type": kind,
        "aigc_data": uri(data_cid),
        "proof_type": "validity",
        "attributes": [{"trait_type": "model", "value": pkg.model_id[:12]},
                       {"trait_type": "task", "value": pkg.task},
                       {"trait_type": "proof system", "value": "EZKL / Halo2 KZG"},
                       {"trait_type": "parent", "value": prov.parent},
                       *fidelity_attributes(bundle, pkg, index)],
        "model": {"registration": prov.model_id, "onnx_sha256": "0x" + prov.onnx_sha256,
                  "uri": prov.model_uri},
        "circuit": {"id": "0x" + prov.circuit_id, "uri": prov.circuit_uri,
                    "max_abs_error": pkg.quantization.get("max_abs_error"),
                    "tolerance": pkg.quantization.get("tolerance")},
        "input_commitment": input_commitment,
        "input_visibility": pkg.visibility.input,
        "outputs_hash": outputs_hash,
        "outputs": {"uri": uri(outputs_cid), "content_type": "application/json"},
        "aigc_data_type": rendering.data_type,
        "image_type": rendering.image_type,
        "rendering": rendering.how,
        "proof": {"uri": prov.proof_uri, "hash": prov.proof_hash, "batch_index": index},
        "verifier": prov.verifier,
        "chain": {"chain_id": prov.chain_id, "token_contract": prov.token_contract,
                  "registry": prov.registry},
        "parent": prov.parent,
        "creator": prov.creator,
        "format": ASSET_FORMAT,
    }
    if prov.segments:
        metadata["segments"] = {"count": len(prov.segments), "link": prov.link,
                                "circuits": ["0x" + c for c in prov.segments]}
    data = _json_bytes(metadata)
    if len(data) > CHUNK:
        raise ContentError(f"token metadata is {len(data)} bytes, over one {CHUNK}-byte IPFS block "
                           "(the token records a single block's digest) — a shorter prompt is needed")
    cid = store.add_bytes(data)
    return TokenContent(metadata, cid, raw_digest(cid), rendering)


# ---- checking one token's content ----

def schema_errors(metadata: dict) -> list[str]:
    """Where ``metadata`` breaks ERC-7007's metadata schema (empty: it validates)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(metadata)]


def content_matches(metadata: dict, source: Source, bundle: ProofBundle, pkg: CircuitPackage,
                    index: int) -> tuple[bool, str]:
    """Fetch the token's content and compare it with what the proof's outputs render to:
    the outputs document exactly, an image by its pixels, a card by its bytes."""
    outputs_doc = source.fetch_json(metadata["outputs"]["uri"])
    if outputs_doc != json.loads(_json_bytes(outputs_document(bundle, pkg, index))):
        return False, "the published outputs are not the proof's outputs"
    expected = render.render(item_outputs(bundle, pkg, index), pkg.output_shapes, pkg.task,
                             f"{pkg.task} model {pkg.model_id[:8]}", _json_bytes(outputs_doc))
    if metadata.get("aigc_type") != expected.aigc_type:
        return False, f"aigc_type is {metadata.get('aigc_type')!r}; the outputs are a {expected.aigc_type}"
    data, image = source.fetch(metadata["aigc_data"]), source.fetch(metadata["image"])
    if expected.aigc_type == "image":
        try:
            same = all(np.array_equal(render.png_pixels(got), render.png_pixels(want))
                       for got, want in ((data, expected.data), (image, expected.image)))
        except OSError:
            return False, "aigc_data or image is not a readable PNG"
        detail = "pixels of the image and its upscaled rendering equal the proof's outputs rendered"
    else:
        same = data == expected.data and image == expected.image
        detail = "the outputs and their card equal the proof's outputs rendered"
    return (True, detail) if same else (False, "the content at aigc_data/image is not what the "
                                                "proof's outputs render to")

