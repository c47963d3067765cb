"""``proofmint prove``: inputs -> witness -> proof -> proof bundle, on a proving backend.

Per-circuit work (loading the package, the onnxruntime session) is done once per worker;
each input then costs one witness and one ``ezkl.prove`` (which re-reads the proving key
from disk: ezkl 23 has no in-memory key API). ezkl runs in child processes (it holds the
GIL), so progress stays live and Ctrl-C works.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from proofmint import errors, progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import InputOutOfRangeError, ProvingError
from proofmint.faults import failpoint
from proofmint.store import Workspace

from . import witness as witness_mod
from .bundle import ProofBundle
from .backends import DEVICE_ENV, ezkl_version, make_backend
from .inputs import batches, check_range, read_inputs


UNPROVABLE_HINT = ("a value likely fell outside the ranges the circuit was calibrated for: "
                   "recompile with this input among the calibration samples (--calibration FILE)")


@dataclass
class ProveResult:
    circuit_id: str
    bundles: list[str]
    failures: list[dict] = field(default_factory=list)
    srs_warning: str | None = None
    backend: str = "local"
    workers: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    batches: list[dict] = field(default_factory=list)  # batch circuits: inputs and padding per bundle

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_circuit(circuit: str | Path, workspace: str | Path | None) -> CircuitPackage:
    """A circuit id (or prefix), or an ONNX file compiled with default options (cache hit if done)."""
    ws = Workspace.resolve(workspace)
    if str(circuit).endswith(".onnx") or Path(circuit).is_file():
        from proofmint.circuits.compile import compile as compile_model

        return compile_model(circuit, workspace=ws.root).package
    return package_mod.load(ws, str(circuit))


def output_paths(out: str | Path | None, count: int) -> list[Path]:
    """One bundle per proof: ``out`` itself for one, ``stem-0000.json``... for several."""
    base = Path(out) if out else Path("proof.json")
    if count == 1:
        return [base]
    suffix = base.suffix or ".json"
    return [base.with_name(f"{base.stem}-{i:04d}{suffix}") for i in range(count)]


def prove(circuit: str | Path, input: str | Path, out: str | Path | None = None,
          workspace: str | Path | None = None, threads: int | None = None, workers: int = 1,
          backend: str = "local", address: str | None = None, device: str = "cpu") -> ProveResult:
    """Prove every input in ``input`` against ``circuit``; one bundle per input, in input order
    (for a batch circuit, one bundle per ``batch_size`` inputs, the last batch padded).

    ``workers``: parallel prover processes on this machine; ``backend="ray"`` (with ``address``
    of a cluster, or none for a local Ray) runs the same job on Ray. Prover threads default to
    all cores divided among the workers. ``device="gpu"`` asks ezkl for ICICLE GPU proving,
    refused unless this ezkl build has it and a GPU is present (untested: no GPU was lent).
    """
    started = time.perf_counter()
    engine = make_backend(backend, workers, threads, address, device)
    pkg = resolve_circuit(circuit, workspace)
    inputs = read_inputs(input, pkg.input_shape, pkg.input_sizes)  # a malformed file fails here, whole
    failures, todo = [], []
    for i, x in enumerate(inputs):
        try:
            check_range(x, pkg.input_range, f"input {i}" if len(inputs) > 1 else f"input {input}")
            todo.append(i)
        except InputOutOfRangeError as exc:
            if len(inputs) == 1:
                raise
            # In a stream, an unprovable input is reported and the others are proven.
            failures.append({"index": i, "error": str(exc), "type": type(exc).__name__})
    # A job is one input, or one batch of inputs (the last padded) for a batch circuit.
    groups = [todo[i:i + pkg.batch_size] for i in range(0, len(todo), pkg.batch_size)]
    chunks = batches(np.stack([inputs[i] for i in todo]), pkg.batch_size) if todo else []
    jobs = np.stack([c.items if pkg.batch_size > 1 else c.items[0] for c in chunks]) if chunks else None
    padding = [pkg.batch_size - c.real for c in chunks]
    paths = output_paths(out, len(inputs) if pkg.batch_size == 1 else len(groups))
    results, worker_stats = [], []
    if chunks:
        with progress.step("prove", total=len(chunks)):
            results, worker_stats = engine.run(pkg, jobs, padding)
    bundles, batch_info = [], []
    for r in results:
        group = groups[r["index"]]
        path = paths[group[0] if pkg.batch_size == 1 else r["index"]]
        if "bundle" in r:
            ProofBundle(**r["bundle"]).save(path)
            bundles.append(str(path))
            if pkg.batch_size > 1:
                batch_info.append({"bundle": str(path), "inputs": group, "padding": padding[r["index"]]})
        else:
            failures.extend({"index": i, "error": r["error"], "type": r["type"]} for i in group)
    failures.sort(key=lambda f: f["index"])
    warning = "development SRS (not secure)" if pkg.srs_kind == "development" else None
    return ProveResult(pkg.circuit_id, bundles, failures, warning, engine.name, worker_stats,
                       {"total": round(time.perf_counter() - started, 3)}, batch_info)


def prove_one(pkg: CircuitPackage, model, x: np.ndarray, work: Path, threads: int,
              padding: int = 0) -> ProofBundle:
    """Witness + proof + reference run for one input, or one batch of ``pkg.batch_size``
    inputs (stacked, the last ``padding`` of them padding), in the calling process."""
    import ezkl

    t0 = time.perf_counter()
    wpath, w = witness_mod.generate(pkg.compiled, x, work, vk=pkg.vk, srs=Path(pkg.srs_path),
                                    sizes=pkg.input_sizes)
    witness_mod.check_lookups(w, pkg.lookup_range)
    t1 = time.perf_counter()
    proof_path = work / "proof.json"
    try:
        ezkl.prove(str(wpath), str(pkg.compiled), str(pkg.pk), str(proof_path),
                   srs_path=pkg.srs_path)
    except Exception as exc:
        raise errors.ezkl_error("prove", exc, hint=UNPROVABLE_HINT) from None
    failpoint("prove:proof-written")
    t2 = time.perf_counter()
    # ezkl proves unsatisfied circuits without complaint (a value past a range check or a
    # lookup table): a proof leaves here only if it verifies (milliseconds next to proving).
    try:
        ok = ezkl.verify(str(proof_path), str(pkg.settings), str(pkg.vk), srs_path=pkg.srs_path)
    except Exception as exc:
        ok, why = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        why = "ezkl.verify returned false"
    if not ok:
        raise ProvingError(f"the proof does not verify ({why}) — {UNPROVABLE_HINT}")
    outputs = witness_mod.decode_outputs(w, pkg.output_scales)
    items = x.reshape(pkg.batch_size, -1)
    per_item = [model.run(item) for item in items]
    reference = [np.concatenate([r[k].ravel() for r in per_item]) for k in range(len(outputs))]
    t3 = time.perf_counter()
    real = pkg.batch_size - padding
    got = witness_mod.split_items(outputs, pkg.batch_size)[:real]
    want = witness_mod.split_items(reference, pkg.batch_size)[:real]
    ezkl_proof = json.loads(proof_path.read_text())
    ezkl_proof.pop("pretty_public_inputs", None)  # derivable; keeps bundles small
    return ProofBundle(
        circuit_id=pkg.circuit_id, model_id=pkg.model_id, srs_kind=pkg.srs_kind,
        srs_sha256=pkg.srs_sha256, visibility=pkg.visibility, input_shape=pkg.input_shape,
        input=None if pkg.visibility["input"] == "private" else x.ravel().tolist(),
        outputs=[o.tolist() for o in outputs], reference_outputs=[r.tolist() for r in reference],
        max_abs_diff=float(max(np.abs(g - r).max() for g, r in zip(got, want))),
        argmax_agrees=all(bool(g.argmax() == r.argmax()) for g, r in zip(got, want))
        if pkg.task == "classification" else None,
        ezkl_proof=ezkl_proof,
        timings={"witness": round(t1 - t0, 3), "prove": round(t2 - t1, 3),
                 "reference": round(t3 - t2, 3)},
        prover={"backend": "ezkl-icicle-gpu" if os.environ.get(DEVICE_ENV) == "gpu" else "ezkl-cpu",
                "threads": threads, "ezkl": ezkl_version()},
        batch_size=pkg.batch_size, padding=padding,
    )
