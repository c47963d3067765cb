"""A circuit package: everything needed to prove and verify one circuit, in one folder.

``circuits/<circuit_id>/package.json`` is written last, so a folder without it is an
unfinished compile and is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from proofmint import ezkl_layer, progress
from proofmint.encoding import InstanceLayout, Visibility
from proofmint.errors import NotFoundError, ProofmintError, ProvingError, WorkspaceError
from proofmint.faults import failpoint
from proofmint.store import (TMP_PREFIX, Workspace, atomic_write_bytes, atomic_write_json, canonical_json,
                             read_json, sha256_bytes, sha256_file, staged)

if TYPE_CHECKING:
    from proofmint.models.onnx_model import OnnxModel

from . import srs as srs_mod
from .report import CompileReport

RUNTIME_FIELDS = ("dir", "srs_path")  # where this copy of the package and its SRS lie: not saved


class _File:
    """A file of the package folder, as a read-only attribute (``pkg.vk`` is its vk.key)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, pkg: "CircuitPackage | None", owner=None):
        return self if pkg is None else pkg.path / self.name


@dataclass
class CircuitPackage:
    circuit_id: str
    model_id: str
    input_shape: list[int]
    output_shapes: list[list[int]]
    task: str  # "classification" or "regression" (decisions compared by argmax or tolerance)
    target: str
    visibility: Visibility
    logrows: int
    num_rows: int
    input_scale: int
    param_scale: int
    output_scales: list[int]
    lookup_range: list[int]
    input_range: list[float]  # min, max seen on calibration data
    srs_kind: str
    srs_sha256: str
    pk_bytes: int
    vk_bytes: int
    quantization: dict = field(default_factory=dict)
    calibration_report: CompileReport | None = None
    digests: dict = field(default_factory=dict)  # sha256 of the small artifacts, checked on load
    batch_size: int = 1  # inferences per proof; input_shape and output_shapes are per inference
    input_shapes: list[list[int]] | None = None  # each graph input's shape (input_shape: all, flat)
    input_names: list[str] | None = None
    reference: str = "onnxruntime"  # the float engine the fidelity figures come from
    srs_file: str | None = None  # a user's SRS: relative to the workspace when inside it
    vocab: list[str] | None = None  # what each output position names (a text model's characters)
    input_from: str | None = None  # the circuit whose output this one's input is (--input-from)
    input_from_start: int = 0  # where among one inference's output instances of it the input begins
    # no pk.key kept: each proof makes it first and deletes it after (:func:`proving_key`), for
    # segments whose keys together would not fit the disk (the zoo GPT's 8: ~89 GB)
    pk_on_demand: bool = False
    dir: str = ""
    srs_path: str = ""

    @property
    def input_sizes(self) -> list[int]:
        return [math.prod(s) for s in (self.input_shapes or [self.input_shape])]

    @property
    def path(self) -> Path:
        return Path(self.dir)

    settings = _File("settings.json")
    compiled = _File("model.compiled")
    onnx = _File("model.onnx")  # the user's model, whose hash the registry binds
    pk = _File("pk.key")
    vk = _File("vk.key")

    @property
    def srs(self) -> Path:
        """The SRS the keys were made with, found on first use (mint and show never need it)."""
        if not self.srs_path:
            recorded = None if self.srs_file is None else self.path.parent.parent / self.srs_file
            self.srs_path = str(srs_mod.locate(self.srs_kind, self.srs_sha256, recorded))
        return Path(self.srs_path)

    @property
    def srs_warning(self) -> str | None:
        return srs_mod.DEV_WARNING if self.srs_kind == "development" else None

    @property
    def layout(self) -> InstanceLayout:
        """Where inputs and outputs sit among the proof's public instances."""
        if self.batch_size > 1 and len(self.output_shapes) > 1:
            # ezkl lays out each output tensor whole; per-item slices would interleave
            raise WorkspaceError("batch circuits with several output tensors are not supported")
        return InstanceLayout.of(self.visibility, math.prod(self.input_shape),
                                 [math.prod(s) for s in self.output_shapes], self.batch_size,
                                 len(self.input_sizes))

    def save(self) -> None:
        atomic_write_json(self.path / "package.json", self.to_dict())

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}


def load(ws: Workspace, circuit_id: str, *, root: Path | None = None,
         verify_only: bool = False) -> CircuitPackage:
    """The complete package for ``circuit_id`` (or a unique prefix of it, 8+ characters).

    ``verify_only``: a package fetched to check someone's proof (under ``root``): settings,
    verifying key and model, without the proving key or compiled circuit."""
    root = root or ws.circuits()
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
    names = {f.name for f in fields(CircuitPackage)} - set(RUNTIME_FIELDS)
    try:
        data["visibility"] = Visibility.of(data["visibility"])
        data["calibration_report"] = CompileReport.from_dict(data.get("calibration_report") or {"target": "unknown"})
        pkg = CircuitPackage(**{k: v for k, v in data.items() if k in names})
    except (TypeError, KeyError, ProofmintError) as exc:
        raise WorkspaceError(f"{matches[0]}/package.json is not a circuit package ({exc}) — "
                             "compile the model again") from None
    pkg.dir = str(matches[0])
    needed = (pkg.settings, pkg.vk, pkg.onnx) if verify_only else \
        (pkg.settings, pkg.compiled, pkg.vk) + ((pkg.pk,) if not pkg.pk_on_demand else ())
    for f in needed:
        if not f.is_file():
            raise WorkspaceError(f"circuit {pkg.circuit_id} is missing {f.name} — compile it again")
    for name, digest in pkg.digests.items():
        if verify_only and not (pkg.path / name).is_file():
            continue
        if sha256_file(pkg.path / name) != digest:
            raise WorkspaceError(f"{name} of circuit {pkg.circuit_id[:16]} was modified after compile "
                                 f"(sha256 differs) — delete {pkg.path} and compile again")
    if not verify_only and not pkg.pk_on_demand and pkg.pk.stat().st_size != pkg.pk_bytes:
        raise WorkspaceError(f"pk.key of circuit {pkg.circuit_id[:16]} has {pkg.pk.stat().st_size} bytes, "
                             f"not the {pkg.pk_bytes} setup wrote — delete {pkg.path} and compile again")
    return pkg


@contextlib.contextmanager
def proving_key(pkg: CircuitPackage, timings: dict | None = None, setup=None):
    """The path of ``pkg``'s proving key while a proof needs it: its pk.key, or, compiled with
    keys on demand, one made now beside it and deleted after. Setup is deterministic: the
    package's circuit and SRS give the key whose verifying key it holds, and the one made
    with it is compared, so a key that would not prove against that vk is never used.
    ``timings`` gets the seconds making it took (``key``); ``setup`` makes it (default: ezkl's
    setup here; a prover passes one in a process of its own, so setup's memory is gone before
    the proof's). The folder it is made in is locked while in use, so a prover killed
    mid-proof leaves a key the next one clears."""
    if not pkg.pk_on_demand:
        yield pkg.pk
        return
    clear_stale_keys(pkg.path)
    free = shutil.disk_usage(pkg.path).free
    if free < pkg.pk_bytes + KEY_HEADROOM:
        raise WorkspaceError(f"circuit {pkg.circuit_id[:16]}'s proving key is made for each proof and needs "
                             f"{pkg.pk_bytes / 2**30:.1f} GiB of disk; {pkg.path.parent} has {free / 2**30:.1f} GiB "
                             "free — free space there, or prove with fewer --workers")
    made = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}pk-", dir=pkg.path))
    with open(made / KEY_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            started = time.perf_counter()
            (setup or ezkl_layer.setup)(pkg.compiled, made / "vk.key", made / "pk.key", pkg.srs)
            if sha256_file(made / "vk.key") != sha256_file(pkg.vk):
                raise ProvingError(f"the proving key made for circuit {pkg.circuit_id[:16]} does not match its "
                                   f"verifying key (the SRS {pkg.srs} is not the one it was compiled with?) — "
                                   f"delete {pkg.path} and compile again")
            if timings is not None:
                timings["key"] = round(time.perf_counter() - started, 3)
            yield made / "pk.key"
        finally:
            shutil.rmtree(made, ignore_errors=True)


KEY_LOCK = "in-use.lock"
KEY_HEADROOM = 2**30  # a witness, a proof and ezkl's own files beside a key made for a proof


def clear_stale_keys(folder: Path) -> None:
    """Keys made on demand whose prover is gone (killed mid-proof: a whole key's disk each):
    a folder whose lock no live process holds. One made this very moment, before its lock
    exists, is left alone."""
    for d in folder.glob(f"{TMP_PREFIX}pk-*"):
        try:
            with open(d / KEY_LOCK, "r+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(d, ignore_errors=True)
        except BlockingIOError:
            continue  # a live prover's
        except FileNotFoundError:  # no lock yet: stale only once older than making one takes
            with contextlib.suppress(FileNotFoundError):
                if time.time() - d.stat().st_mtime > 60:
                    shutil.rmtree(d, ignore_errors=True)


def keep_keys(pkg: CircuitPackage, on_demand: bool) -> CircuitPackage:
    """``pkg`` with its proving key kept or made by each proof, as a later compile asks (the
    circuit was compiled the other way before). Under the circuit's lock; a kill at any
    point leaves a package that proves."""
    if pkg.pk_on_demand == on_demand:
        return pkg
    if on_demand:
        pkg.pk_on_demand = True
        pkg.save()
        pkg.pk.unlink(missing_ok=True)
    else:
        with proving_key(pkg) as made:  # checked against the package's vk
            os.replace(made, pkg.pk)
        pkg.pk_on_demand = False
        pkg.save()
    return pkg


def srs_record(ws: Workspace, srs: "srs_mod.SRS") -> str | None:
    """How package.json names a user's SRS: relative to the workspace when inside it."""
    if srs.kind == "development":
        return None  # found by digest in the machine's cache
    path = Path(srs.path)
    return str(path.relative_to(ws.root)) if path.is_relative_to(ws.root) else str(path)


DIGESTED = ("settings.json", "model.compiled", "vk.key", "model.onnx", "circuit.onnx")


def settings_digest_source(settings: dict) -> dict:
    """The settings that define a circuit: the timestamp ezkl writes is not part of it."""
    return {k: v for k, v in settings.items() if k != "timestamp"}


def circuit_id_of(model_id: str, settings: dict, srs_sha256: str,
                  input_from: tuple[str, int] | None = None) -> str:
    """A circuit's id: its model, its settings (ezkl's variables, so the batch size too) and
    the SRS its keys come from, and for a model whose input is another circuit's output that
    circuit and where in its outputs the input begins (one model, two lineages: two ids).
    Anyone holding the files (and the published package) derives the same id."""
    fields = {"model": model_id, "settings": settings_digest_source(settings), "srs": srs_sha256}
    if input_from is not None:
        fields["input_from"] = list(input_from)
    return sha256_bytes(canonical_json(fields))


def lineage_of(pkg: CircuitPackage) -> tuple[str, int] | None:
    """What a package's circuit id binds of its lineage (``circuit_id_of``'s ``input_from``)."""
    return (pkg.input_from, pkg.input_from_start) if pkg.input_from else None


def create(ws: Workspace, dest: Path, model: "OnnxModel", graph: "OnnxModel", chosen, report: CompileReport,
           input_range: list[float], target: str, visibility: Visibility, task: str, srs: "srs_mod.SRS",
           circuit_id: str, batch: int, vocab: list[str] | None = None,
           input_from: tuple[str, int] | None = None, pk_on_demand: bool = False) -> tuple[CircuitPackage, float]:
    """Copy the chosen circuit (a candidate.Candidate) into ``dest``, run setup, and write
    package.json last. Returns the package and setup's seconds. ``pk_on_demand``: setup runs
    for the verifying key (and the key's size), and the proving key is not kept."""
    dest.mkdir(parents=True, exist_ok=True)
    for debris in dest.glob(".tmp-*"):  # left by a killed run; we hold the circuit's lock
        shutil.rmtree(debris, ignore_errors=True) if debris.is_dir() else debris.unlink(missing_ok=True)
    files = [(chosen.settings_path, "settings.json"), (chosen.compiled_path, "model.compiled")]
    if graph is not model:  # the batched graph ezkl compiled, kept beside the user's model
        files.append((graph.path, "circuit.onnx"))
    for src, name in files:
        with staged(dest / name) as tmp:
            shutil.copyfile(src, tmp)
    atomic_write_bytes(dest / "model.onnx", model.data)  # its id's bytes: external weights embedded
    settings = chosen.settings
    logrows = settings["run_args"]["logrows"]
    reuse = chosen.keys is not None and chosen.keys_srs == srs.path  # timed with this SRS
    with progress.step(f"setup (logrows {logrows}{': keys from timing its proof' if reuse else ''})") as t, \
            staged(dest / "pk.key") as pk, staged(dest / "vk.key") as vk:
        if reuse:  # setup is deterministic: the same circuit and SRS give these same keys
            shutil.move(chosen.keys / "pk.key", pk)
            shutil.move(chosen.keys / "vk.key", vk)
        else:
            ezkl_layer.setup(dest / "model.compiled", vk, pk, Path(srs.path))
        failpoint("compile:keys-written")
    run = settings["run_args"]
    pkg = CircuitPackage(
        circuit_id=circuit_id, model_id=model.model_id, dir=str(dest), srs_path=srs.path,
        input_shape=list(model.input_shape),
        output_shapes=[list(s) for s in model.output_shapes], task=task, target=target,
        visibility=visibility, logrows=logrows, num_rows=settings["num_rows"],
        input_scale=run["input_scale"], param_scale=run["param_scale"],
        output_scales=settings["model_output_scales"], lookup_range=run["lookup_range"],
        input_range=input_range,
        srs_kind=srs.kind, srs_sha256=srs.sha256, srs_file=srs_record(ws, srs),
        pk_bytes=(dest / "pk.key").stat().st_size, vk_bytes=(dest / "vk.key").stat().st_size,
        quantization=chosen.quality or {}, calibration_report=report,
        digests={name: sha256_file(dest / name) for name in DIGESTED
                 if (dest / name).is_file()},
        batch_size=batch, input_shapes=[list(x) for x in model.input_shapes],
        input_names=list(model.input_names), reference=model.reference, vocab=vocab,
        input_from=input_from[0] if input_from else None, input_from_start=input_from[1] if input_from else 0,
        pk_on_demand=pk_on_demand,
    )
    if pk_on_demand:
        (dest / "pk.key").unlink()
    pkg.save()
    return pkg, t["seconds"]
