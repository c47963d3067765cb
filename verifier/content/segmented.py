"""A segmented model as its token sees it: one statement over a chain of segment proofs.

The registry checks the chain in one call (``ModelRegistry.registerSegmentedModel``,
``checkSegments``): the segments' instances back to back (so the token's input commitment
comes from the first segment, its outputs from the last, and its replay key covers every
segment's), their proofs ABI-encoded as one ``bytes[]``, their VKAs back to back. Here that
view is built from the segmented package and bundle, so a token's content is rendered,
published and checked by the same code as a single circuit's.

Deploy publishes every segment's circuit (as :func:`~.publish.publish_circuit` does one) and
``segments.json`` with the model under one manifest; :func:`fetch_segmented` reads them back,
each file checked against its CID; :func:`cut_from` re-cuts a registered model at the
recorded tensors, so a checker sees that the segments are that model's.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eth_abi import encode

from proofmint.circuits.package import CircuitPackage
from proofmint.circuits.report import CompileReport
from proofmint.circuits.segmented import MANIFEST, SegmentedPackage, known_fields
from proofmint.encoding import InstanceLayout, Visibility
from proofmint.errors import ContentError, InvalidModelError, ProofmintError, WorkspaceError
from proofmint.prover.bundle import ProofBundle
from proofmint.prover.segmented import SegmentedBundle
from proofmint.store import Workspace, read_json, sha256_file

from proofmint.verifier.content.publish import CircuitContent, fetch_circuit, publish_circuit
from proofmint.verifier.content.store import ContentStore, Source, uri

SEGMENTED_FORMAT = "proofmint/segmented/v1"


@dataclass(frozen=True)
class Link:
    """Positions in segment i's instances (``outputs``) that equal those in segment i+1's
    (``inputs``): the registry's ``Link``."""

    outputs: list[int]
    inputs: list[int]

    def solidity(self) -> dict:
        return {"outputs": self.outputs, "inputs": self.inputs}


@dataclass
class SegmentedView:
    """A segmented package with what a token's content reads of a circuit package: the model's
    shapes, task and fidelity, the first segment's input scale, the last one's output scales,
    and the instance layout of the segments' instances back to back."""

    spkg: SegmentedPackage
    segments: list[CircuitPackage]

    circuit_id = property(lambda self: self.spkg.circuit_id)
    model_id = property(lambda self: self.spkg.model_id)
    task = property(lambda self: self.spkg.task)
    output_shapes = property(lambda self: self.spkg.output_shapes)
    quantization = property(lambda self: self.spkg.quantization)
    visibility = property(lambda self: self.spkg.visibility)
    batch_size = 1
    input_scale = property(lambda self: self.segments[0].input_scale)
    output_scales = property(lambda self: self.segments[-1].output_scales)
    reference = property(lambda self: self.spkg.quantization.get("reference", "onnxruntime"))
    path = property(lambda self: self.spkg.path)

    @property
    def counts(self) -> list[int]:
        """Each segment's instance count, in order."""
        return [p.layout.instance_count for p in self.segments]

    @property
    def layout(self) -> InstanceLayout:
        """The model's input in the first segment's instances, its outputs in the last's."""
        first, last = self.segments[0].layout, self.segments[-1].layout
        before_last = sum(self.counts[:-1])
        return InstanceLayout(1, first.input_start, first.input_count, before_last + last.output_start,
                              last.output_count, before_last + last.instance_count, first.input_hashed)

    @property
    def links(self) -> list[Link]:
        """Per cut: segment i's output instances equal segment i+1's input instances (one hash
        per carried tensor, or every carried value)."""
        out = []
        for i, (a, b) in enumerate(zip(self.segments, self.segments[1:])):
            la, lb = a.layout, b.layout
            outputs = list(range(la.output_start, la.output_start + la.output_count))
            inputs = list(range(lb.input_start, lb.input_start + lb.input_count))
            if len(outputs) != len(inputs) or not outputs:
                raise WorkspaceError(f"segment {i} has {len(outputs)} output instances but segment {i + 1} "
                                     f"{len(inputs)} input instances: they can't be linked — compile again")
            out.append(Link(outputs, inputs))
        return out


def encode_proofs(bundle: SegmentedBundle) -> bytes:
    """The segments' proofs as the registry decodes them: abi.encode(bytes[])."""
    return encode(["bytes[]"], [[bytes(s.ezkl_proof["proof"]) for s in bundle.segments]])


def statement(bundle: SegmentedBundle) -> ProofBundle:
    """The chain as one proof bundle, as the token records it: the encoded proofs, every
    segment's instances back to back, the model's input and decoded outputs."""
    return ProofBundle(
        circuit_id=bundle.circuit_id, model_id=bundle.model_id, srs_kind=bundle.srs_kind, srs_sha256="",
        visibility=bundle.visibility, input_shape=bundle.input_shape, input=bundle.input, outputs=bundle.outputs,
        reference_outputs=bundle.reference_outputs, max_abs_diff=bundle.max_abs_diff,
        argmax_agrees=bundle.argmax_agrees,
        ezkl_proof={"proof": list(encode_proofs(bundle)), "instances": [bundle.instances]})


# ---- published content ----

def publish_segmented(view: SegmentedView, store: ContentStore) -> CircuitContent:
    """Every segment's circuit, ``segments.json`` and the model's ONNX, under one manifest (the
    registration's metadataURI). Its ``package`` is ``segments.json``: the model's shapes and
    task, as a circuit's package.json gives a single circuit's."""
    spkg = view.spkg
    segments = [publish_circuit(p, store).uri for p in view.segments]
    package, onnx = store.add_files([spkg.path / MANIFEST, spkg.path / "model.onnx"])
    manifest = {"format": SEGMENTED_FORMAT, "circuit_id": spkg.circuit_id, "link": spkg.link,
                "files": {"package": uri(package), "onnx": uri(onnx)}, "segments": segments}
    return CircuitContent(uri(store.add_json(manifest)), uri(onnx), {"package": package, "onnx": onnx})


def is_segmented(manifest: dict) -> bool:
    return isinstance(manifest, dict) and manifest.get("format") == SEGMENTED_FORMAT


def fetch_segmented(source: Source, manifest_uri: str, root: Path, ws: Workspace) -> SegmentedView:
    """A verify-only segmented package from a published one, in ``root``: ``segments.json``
    and the model in ``root/<id>``, each segment's circuit as :func:`fetch_circuit` fetches it.
    Every file is checked against its CID; the manifest must list the segments
    ``segments.json`` names, in its order."""
    manifest = source.fetch_json(manifest_uri)
    files, segments = manifest.get("files"), manifest.get("segments")
    circuit_id = str(manifest.get("circuit_id", ""))
    if not is_segmented(manifest) or not isinstance(files, dict) or not isinstance(segments, list) \
            or not re.fullmatch(r"[0-9a-f]{64}", circuit_id) or not {"package", "onnx"} <= set(files):
        raise ContentError(f"{manifest_uri} is not a proofmint segmented-circuit manifest")
    dest = root / circuit_id
    source.fetch_to(files["package"], dest / MANIFEST)
    source.fetch_to(files["onnx"], dest / "model.onnx")
    try:
        data = read_json(dest / MANIFEST)
        data.update(visibility=Visibility.of(data["visibility"]),  # the report: the rewrites' chosen constants
                    calibration_report=CompileReport.from_dict(data.get("calibration_report") or {"target": "unknown"}))
        spkg = SegmentedPackage(**known_fields(data))
    except (TypeError, KeyError, AttributeError, ProofmintError) as exc:
        raise ContentError(f"the segments.json {manifest_uri} publishes is not a segmented package ({exc})") from None
    spkg.dir = str(dest)
    pkgs = [fetch_circuit(source, str(u), root, ws) for u in segments]
    if [p.circuit_id for p in pkgs] != spkg.segments:
        raise ContentError(f"{manifest_uri} publishes {len(pkgs)} segment circuits that are not the "
                           f"{len(spkg.segments)} its segments.json names, in its order")
    return SegmentedView(spkg, pkgs)


def cut_from(model: Path, spkg: SegmentedPackage) -> list[str]:
    """The sha256 of each segment ``model`` gives when rewritten (with the constants compile
    chose from its samples, as its report records them) and cut at the tensors the package's
    plan records, as compile cut it: equal to the segments' model ids when the segments are
    that model's."""
    import onnx

    from proofmint.circuits import rewrite
    from proofmint.models.onnx_model import extract, load_onnx

    with tempfile.TemporaryDirectory(prefix="proofmint-cut-") as tmp:
        work = Path(tmp)
        graph = rewrite.replay(load_onnx(model), work / "rewritten.onnx", spkg.calibration_report.rewrites)
        outputs = [o.name for o in onnx.load(graph.path).graph.output]
        cuts = [(s["inputs"] or list(graph.input_names), s["outputs"] or outputs) for s in spkg.plan["segments"]]
        try:
            return [sha256_file(extract(graph.path, work / f"segment-{i}.onnx", a, b)) for i, (a, b) in enumerate(cuts)]
        except (ValueError, KeyError, onnx.checker.ValidationError) as exc:  # onnx.utils names a missing tensor so
            raise InvalidModelError(f"{model.name} can't be cut where the segments were ({exc})") from None
