"""Proving engines behind one small interface: where ``prove_one`` runs.

- ``LocalBackend(workers=K)``: K child processes on this machine, each proving an
  interleaved slice of the inputs with ``cores // K`` prover threads (workers x threads
  fits the cores). Workers share the circuit package on disk; ezkl 23 re-reads the proving
  key on every proof (it has no in-memory key API), which the OS page cache makes a memory
  copy rather than a disk read — no worker layout avoids that copy.
- ``RayBackend(address)``: the same job on a Ray cluster (a local one when no address is
  given). The circuit package goes into Ray's object store once; each node writes it to a
  node-local cache once (under a file lock) and its tasks read it from there, so nothing is
  shipped per input.

Both return one :class:`JobResult` per job (an input, or a batch of them), in job order,
plus one :class:`WorkerStats` per worker.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from proofmint import ezkl_layer, progress
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ProofmintError, UsageError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import load_onnx

from .bundle import ProofBundle
from .proof import prove_one

PACKAGE_FILES = ("settings.json", "model.compiled", "pk.key", "vk.key", "model.onnx")
GPU_ENV = "ICICLE_BACKEND_INSTALL_DIR"  # what ezkl's `gpu-accelerated` build reads (src/execute.rs)


@dataclass(frozen=True)
class Device:
    """Where ezkl proves: ``cpu``, or ``gpu`` with the environment ezkl's GPU build reads."""

    name: str = "cpu"
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class JobResult:
    """One job's outcome: a verified bundle, or the one-line error that stopped it."""

    index: int
    bundle: ProofBundle | None = None
    error: str | None = None
    error_type: str | None = None


@dataclass
class WorkerStats:
    worker: int | str
    inputs: int
    threads: int
    peak_rss_mb: float


def check_gpu() -> Device:
    """What ``--device gpu`` needs: an ezkl built with the cargo feature `gpu-accelerated`
    (ICICLE v3), ``ICICLE_BACKEND_INSTALL_DIR`` pointing at an ICICLE CUDA backend, and an
    NVIDIA GPU. Refuses with what is missing otherwise: the PyPI wheels are CPU-only builds
    with no ICICLE code at all."""
    if not ezkl_layer.has_icicle():
        lib = ezkl_layer.library()
        raise UsageError(
            f"--device gpu: this ezkl ({ezkl_layer.version()}, {lib.name if lib else 'no library'}) has no "
            "ICICLE code — the PyPI wheels are CPU-only; build ezkl from source with `--features "
            "gpu-accelerated` and set ICICLE_BACKEND_INSTALL_DIR to an ICICLE CUDA backend, or "
            "prove with --device cpu (the default)")
    backend = os.environ.get(GPU_ENV)  # ezkl's own variable: read where the device is chosen
    if not backend or not Path(backend).is_dir():
        raise UsageError(f"--device gpu: {GPU_ENV} is {'unset' if not backend else 'not a folder: ' + backend}"
                         " — point it at the ICICLE CUDA backend install (its lib/backend folder)")
    if gpu_name() is None:
        raise UsageError("--device gpu: no NVIDIA GPU found (nvidia-smi lists none)")
    return Device("gpu", ((GPU_ENV, backend),))


def gpu_name() -> str | None:
    """The NVIDIA GPU(s) nvidia-smi lists, or None."""
    if not shutil.which("nvidia-smi"):
        return None
    r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                       capture_output=True, text=True)
    return r.stdout.strip() or None


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    return threads or max(1, (os.cpu_count() or 1) // workers)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def prove_slice(pkg: CircuitPackage, inputs: np.ndarray, indices: list[int], padding: list[int],
                threads: int, device: Device) -> tuple[list[JobResult], float]:
    """Prove some jobs in this process; a failed job is reported and the rest go on. A job is
    one input, or for a batch circuit one batch of inputs whose last ``padding`` are padding.
    Returns the results and this process's peak memory (MB)."""
    model = load_onnx(pkg.onnx)
    work = Path(tempfile.mkdtemp(prefix="proofmint-prove-"))
    results = []
    try:
        for i, x, pad in zip(indices, inputs, padding):
            try:
                bundle = prove_one(pkg, model, x, work, threads=threads, device=device.name, padding=pad)
                results.append(JobResult(i, bundle))
            except ProofmintError as exc:
                results.append(JobResult(i, error=str(exc), error_type=type(exc).__name__))
            progress.advance("prove")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results, _peak_rss_mb()


def _child_env(threads: int, device: Device) -> dict:
    """What ezkl reads in a prover process: its thread count, and its GPU backend's folder."""
    return {"RAYON_NUM_THREADS": str(threads), **dict(device.env)}


class Backend(Protocol):
    name: str

    def run(self, pkg: CircuitPackage, inputs: np.ndarray, padding: list[int]
            ) -> tuple[list[JobResult], list[WorkerStats]]:
        """(one result per job in job order, one memory/throughput record per worker)."""


class LocalBackend:
    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None, device: Device = Device()):
        if workers < 1:
            raise UsageError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.threads = threads_per_worker(workers, threads)
        self.device = device

    def run(self, pkg, inputs, padding):
        k = min(self.workers, len(inputs))
        slices = [list(range(w, len(inputs), k)) for w in range(k)]

        @progress.in_context  # each worker thread reports through the caller's progress sink
        def work(idx: list[int]) -> tuple[list[JobResult], float]:
            return run_in_child(prove_slice, pkg, inputs[idx], idx, [padding[i] for i in idx],
                                self.threads, self.device, env=_child_env(self.threads, self.device),
                                what="prove")

        with ThreadPoolExecutor(k) as pool:
            done = list(pool.map(work, slices))
        results = sorted((r for rs, _ in done for r in rs), key=lambda r: r.index)
        workers = [WorkerStats(w, len(s), self.threads, peak) for w, (s, (_, peak)) in enumerate(zip(slices, done))]
        return results, workers


def _node_package(pkg: CircuitPackage, files_ref, srs_ref) -> CircuitPackage:
    """This node's copy of the circuit package, written once per node from the object store."""
    import ray
    from filelock import FileLock

    root = Path(tempfile.gettempdir()) / "proofmint-ray" / pkg.circuit_id
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / "complete").exists():
            files = ray.get(files_ref)
            for name, data in files.items():
                (root / name).write_bytes(data)
            (root / "srs.bin").write_bytes(ray.get(srs_ref))
            (root / "complete").write_text("")
    return replace(pkg, dir=str(root), srs_path=str(root / "srs.bin"))


def _ray_task(pkg: CircuitPackage, refs: list, x: np.ndarray, index: int, padding: int,
              threads: int, device: Device) -> tuple[JobResult, float, str]:
    os.environ.update(_child_env(threads, device))  # a Ray worker process: ezkl reads these
    local = _node_package(pkg, refs[0], refs[1])
    (result,), peak = prove_slice(local, x[None], [index], [padding], threads, device)
    return result, peak, f"{os.uname().nodename}:{os.getpid()}"


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = None, threads: int | None = None, device: Device = Device()):
        self.address = address
        self.threads = threads or 1
        self.device = device

    def run(self, pkg, inputs, padding):
        try:
            import ray
        except ImportError:
            raise UsageError("--backend ray needs Ray: pip install 'ray==2.60.0'") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env={"env_vars": {"RAY_DEDUP_LOGS": "0"}})
        try:
            # Shipped once: nested in a list, the refs are not fetched unless a node lacks the files.
            refs = [ray.put({n: (pkg.path / n).read_bytes() for n in PACKAGE_FILES}),
                    ray.put(pkg.srs.read_bytes())]
            task = ray.remote(num_cpus=self.threads)(_ray_task)
            pending = {task.remote(pkg, refs, x, i, padding[i], self.threads, self.device): i
                       for i, x in enumerate(inputs)}
            outs = []
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    pending.pop(ref)
                    outs.append(ray.get(ref))
                    progress.advance("prove")
        finally:
            if started_here:
                ray.shutdown()
        results = sorted((r for r, _, _ in outs), key=lambda r: r.index)
        by_worker: dict[str, WorkerStats] = {}
        for _, peak, where in outs:
            w = by_worker.setdefault(where, WorkerStats(where, 0, self.threads, peak))
            w.inputs += 1
            w.peak_rss_mb = max(w.peak_rss_mb, peak)
        return results, list(by_worker.values())


def make_backend(backend: str, workers: int, threads: int | None, address: str | None,
                 device: str = "cpu") -> Backend:
    if device not in ("cpu", "gpu"):
        raise UsageError(f"unknown device '{device}' — choose cpu or gpu")
    chosen = check_gpu() if device == "gpu" else Device()
    if backend == "local":
        if address:
            raise UsageError("--address is for --backend ray; drop it or add --backend ray")
        return LocalBackend(workers, threads, chosen)
    if backend == "ray":
        return RayBackend(address, threads, chosen)
    raise UsageError(f"unknown backend '{backend}' — choose local or ray")

