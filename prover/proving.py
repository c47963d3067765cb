"""``proofmint prove``: inputs -> witness -> proof -> proof bundle, on a proving backend.

Per-circuit work (loading the package, the onnxruntime session) is done once per worker;
each input then costs one witness and one ``ezkl.prove`` (which re-reads the proving key
from disk: ezkl 23 has no in-memory key API). ezkl runs in child processes (it holds the
GIL), so progress stays live and Ctrl-C works.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from proofmint import progress
from proofmint.circuits import package as package_mod, segmented as segmented_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.circuits.samples import batches
from proofmint.errors import InputOutOfRangeError, UsageError
from proofmint.inputs import check_range, read_inputs
from proofmint.store import Workspace

from .backends import WorkerStats, make_backend
from .outputs import Failure, output_paths
from .segmented import prove_segmented


@dataclass
class BatchInfo:
    """Which inputs a batch circuit's bundle holds, and how many padding items follow them."""

    bundle: str
    inputs: list[int]
    padding: int


@dataclass
class ProveResult:
    circuit_id: str
    bundles: list[str]
    failures: list[Failure] = field(default_factory=list)
    srs_warning: str | None = None
    backend: str = "local"
    workers: list[WorkerStats] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    batches: list[BatchInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def prove(circuit: str | CircuitPackage, *, input: str | Path, out: str | Path | None = None,
          workspace: str | Path | Workspace | None = None, threads: int | None = None, workers: int = 1,
          backend: str = "local", address: str | None = None, device: str = "cpu") -> ProveResult:
    """Prove every input in ``input`` against ``circuit``; one bundle per input, in input order
    (for a batch circuit, one bundle per ``batch_size`` inputs, the last batch padded).

    ``workers``: parallel prover processes on this machine; ``backend="ray"`` (with ``address``
    of a cluster, or none for a local Ray) runs the same job on Ray. Prover threads default to
    all cores divided among the workers. ``device="gpu"`` asks ezkl for ICICLE GPU proving,
    refused unless this ezkl build has it and a GPU is present (untested: no GPU was lent).
    """
    if str(circuit).endswith(".onnx"):
        raise UsageError(f"{circuit} is a model, not a circuit id — compile it first, or call "
                         "proofmint.prove, which compiles an ONNX file with default options")
    started = time.perf_counter()
    ws = Workspace.resolve(workspace)
    chain = None if isinstance(circuit, CircuitPackage) else segmented_mod.load(ws, str(circuit))
    if chain is not None:  # a model proven as linked segments: one inference, one proof per segment
        if device != "cpu":
            raise UsageError("--device gpu is for single circuits; prove a segmented model on the CPU")
        bundles, failures, stats = prove_segmented(chain, ws, input=input, out=out, workers=workers,
                                                   threads=threads, backend=backend, address=address)
        return ProveResult(chain.circuit_id, bundles, failures, chain.srs_warning, backend, stats,
                           {"total": round(time.perf_counter() - started, 3)})
    engine = make_backend(backend, workers, threads, address, device)
    pkg = circuit if isinstance(circuit, CircuitPackage) else package_mod.load(ws, str(circuit))
    inputs = read_inputs(input, pkg.input_shape, pkg.input_sizes)  # a malformed file fails here, whole
    todo, failures = _in_range(inputs, pkg.input_range, input)
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
        group = groups[r.index]
        path = paths[group[0] if pkg.batch_size == 1 else r.index]
        if r.bundle is not None:
            r.bundle.save(path)
            bundles.append(str(path))
            if pkg.batch_size > 1:
                batch_info.append(BatchInfo(str(path), group, padding[r.index]))
        else:
            failures.extend(Failure(i, r.error or "", r.error_type or "") for i in group)
    failures.sort(key=lambda f: f.index)
    return ProveResult(pkg.circuit_id, bundles, failures, pkg.srs_warning, engine.name, worker_stats,
                       {"total": round(time.perf_counter() - started, 3)}, batch_info)


def _in_range(inputs: list, input_range: list[float], source) -> tuple[list[int], list[Failure]]:
    """The inputs within the calibrated range, and a failure for each far outside it: in a
    stream one is reported and the others are proven; a single one is an error."""
    todo, failures = [], []
    for i, x in enumerate(inputs):
        try:
            check_range(x, input_range, f"input {i}" if len(inputs) > 1 else f"input {source}")
            todo.append(i)
        except InputOutOfRangeError as exc:
            if len(inputs) == 1:
                raise
            failures.append(Failure(i, str(exc), type(exc).__name__))
    return todo, failures
