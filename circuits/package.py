"""A circuit package: everything needed to prove and verify one circuit, in one folder.

``circuits/<circuit_id>/package.json`` is written last, so a folder without it is an
unfinished compile and is never used.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from proofmint.errors import NotFoundError, WorkspaceError
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_file


@dataclass
class CircuitPackage:
    circuit_id: str
    model_id: str
    dir: str
    input_shape: list[int]
    output_shapes: list[list[int]]
    task: str  # "classification" or "regression" (decisions compared by argmax or tolerance)
    target: str
    visibility: dict[str, str]
    logrows: int
    num_rows: int
    input_scale: int
    param_scale: int
    output_scales: list[int]
    lookup_range: list[int]
    input_range: list[float]  # min, max seen on calibration data
    srs_path: str
    srs_kind: str
    srs_sha256: str
    pk_bytes: int
    vk_bytes: int
    quantization: dict = field(default_factory=dict)
    calibration_report: dict = field(default_factory=dict)
    digests: dict = field(default_factory=dict)  # sha256 of the small artifacts, checked on load
    batch_size: int = 1  # inferences per proof; input_shape and output_shapes are per inference
    input_shapes: list[list[int]] | None = None  # each graph input's shape (input_shape: all, flat)
    input_names: list[str] | None = None
    reference: str = "onnxruntime"  # the float engine the fidelity figures come from

    @property
    def input_sizes(self) -> list[int]:
        return [math.prod(s) for s in (self.input_shapes or [self.input_shape])]

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def settings(self) -> Path:
        return self.path / "settings.json"

    @property
    def compiled(self) -> Path:
        return self.path / "model.compiled"

    @property
    def onnx(self) -> Path:
        return self.path / "model.onnx"

    @property
    def pk(self) -> Path:
        return self.path / "pk.key"

    @property
    def vk(self) -> Path:
        return self.path / "vk.key"

    def instance_layout(self) -> dict:
        """Where inputs and outputs sit among the public instances. ezkl's order: input hash,
        param hash, public inputs, public outputs (or their hash). Counts are per inference:
        item i of a batch starts at start + i * count (a hashed input is one hash for all)."""
        n_in = math.prod(self.input_shape)
        n_out = sum(math.prod(s) for s in self.output_shapes)
        if self.batch_size > 1 and len(self.output_shapes) > 1:
            # ezkl lays out each output tensor whole; per-item slices would interleave
            raise WorkspaceError("batch circuits with several output tensors are not supported")
        vis = self.visibility
        pos = 1 if vis["input"] == "hashed" else 0
        pos += 1 if vis["param"] == "hashed" else 0
        if vis["input"] == "hashed":
            inp = (0, 1)
        elif vis["input"] == "public":
            inp = (pos, n_in)
            pos += n_in * self.batch_size
        else:  # private: the proof commits to nothing about the input
            inp = (pos, 0)
        return {"inputStart": inp[0], "inputCount": inp[1], "outputStart": pos,
                "outputCount": n_out if vis["output"] == "public" else 1,
                "inputHashed": vis["input"] == "hashed", "batchSize": self.batch_size}

    def instance_count(self) -> int:
        layout = self.instance_layout()
        return layout["outputStart"] + layout["outputCount"] * self.batch_size

    def save(self) -> None:
        atomic_write_json(self.path / "package.json", asdict(self))

    def to_dict(self) -> dict:
        return asdict(self)


def load(ws: Workspace, circuit_id: str) -> CircuitPackage:
    """The complete package for ``circuit_id`` (or a unique prefix of it, 8+ characters)."""
    root = ws.path("circuits")
    matches = [p for p in root.glob(f"{circuit_id}*") if (p / "package.json").is_file()] \
        if root.is_dir() and len(circuit_id) >= 8 else []
    if not matches:
        raise NotFoundError(
            f"no circuit {circuit_id} in {ws.root} — run `proofmint compile MODEL.onnx` first "
            "(or pass the --workspace it was compiled in)"
        )
    if len(matches) > 1:
        raise NotFoundError(f"circuit id prefix {circuit_id} is ambiguous — give more characters")
    data = read_json(matches[0] / "package.json")
    try:
        pkg = CircuitPackage(**data)
    except TypeError as exc:
        raise WorkspaceError(f"{matches[0]}/package.json is not a circuit package ({exc})") from None
    pkg.dir = str(matches[0])
    for f in (pkg.settings, pkg.compiled, pkg.pk, pkg.vk):
        if not f.is_file():
            raise WorkspaceError(f"circuit {pkg.circuit_id} is missing {f.name} — compile it again")
    for name, digest in pkg.digests.items():
        if sha256_file(pkg.path / name) != digest:
            raise WorkspaceError(f"{name} of circuit {pkg.circuit_id[:16]} was modified after compile "
                                 f"(sha256 differs) — delete {pkg.path} and compile again")
    if pkg.pk.stat().st_size != pkg.pk_bytes:
        raise WorkspaceError(f"pk.key of circuit {pkg.circuit_id[:16]} has {pkg.pk.stat().st_size} bytes, "
                             f"not the {pkg.pk_bytes} setup wrote — delete {pkg.path} and compile again")
    return pkg


DIGESTED = ("settings.json", "model.compiled", "vk.key", "model.onnx", "circuit.onnx")


def settings_digest_source(settings: dict) -> dict:
    """The settings that define a circuit: the timestamp ezkl writes is not part of it."""
    return {k: v for k, v in settings.items() if k != "timestamp"}


def load_settings(path: Path) -> dict:
    return json.loads(Path(path).read_text())
