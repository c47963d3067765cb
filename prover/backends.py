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

Two ways to use one. ``run`` proves a batch (``prove``): one :class:`JobResult` per job (an
input, or a batch of them), in job order, plus one :class:`WorkerStats` per worker.
``start`` / ``submit`` / ``close`` serve a caller that lives long (the prover node): the local
backend keeps K warm workers, each loading a circuit's model once; the Ray backend connects
to Ray once and puts each circuit package into the object store once, for its whole life.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from proofmint import ezkl_layer, progress
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ProofmintError, UsageError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import OnnxModel, load_onnx

from .bundle import ProofBundle
from .proof import prove_one

PACKAGE_FILES = ("settings.json", "model.compiled", "pk.key", "vk.key", "model.onnx")
RAY_CACHE = Path(tempfile.gettempdir()) / "proofmint-ray"  # each Ray node's copy of the packages it proves
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


class WorkerLost(RuntimeError):
    """The process proving a job died (killed, out of memory) before it answered: the job
    itself may be fine, prove it again."""


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


_MODELS: dict[str, OnnxModel] = {}  # in a prover process: circuit id -> its float model


def _model(pkg: CircuitPackage) -> OnnxModel:
    """The circuit's float model (the reference run), loaded once per process."""
    if pkg.circuit_id not in _MODELS:
        _MODELS[pkg.circuit_id] = load_onnx(pkg.onnx)
    return _MODELS[pkg.circuit_id]


def prove_slice(pkg: CircuitPackage, inputs: np.ndarray, indices: list[int], padding: list[int],
                threads: int, device: Device) -> tuple[list[JobResult], float]:
    """Prove some jobs in this process; a failed job is reported and the rest go on. A job is
    one input, or for a batch circuit one batch of inputs whose last ``padding`` are padding.
    Returns the results and this process's peak memory (MB)."""
    model = _model(pkg)
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


def _relay(src: Future, lost: tuple[type[BaseException], ...], pick: Callable = lambda r: r) -> Future:
    """``src``'s outcome as a Future of a :class:`JobResult` (``pick`` takes it from the
    answer), a dead worker (``lost``) as :class:`WorkerLost`."""
    out: Future = Future()

    def settle(f: Future) -> None:
        if f.cancelled():
            out.cancel()
        elif f.exception() is None:
            out.set_result(pick(f.result()))
        else:
            exc = f.exception()
            out.set_exception(WorkerLost(f"a prover process died: {exc}") if isinstance(exc, lost) else exc)

    src.add_done_callback(settle)
    return out


class Backend(Protocol):
    name: str

    def run(self, pkg: CircuitPackage, inputs: np.ndarray, padding: list[int]
            ) -> tuple[list[JobResult], list[WorkerStats]]:
        """(one result per job in job order, one memory/throughput record per worker)."""

    def start(self, worker_init: Callable[[], None] | None = None) -> "Backend":
        """Bring the workers up for a long-lived caller; ``worker_init`` runs first in each
        worker process this backend starts itself."""

    def submit(self, pkg: CircuitPackage, x: np.ndarray, padding: int = 0) -> "Future[JobResult]":
        """Prove one job on a started backend; the Future fails with :class:`WorkerLost` if
        the process proving it dies."""

    def close(self) -> None:
        """Stop what ``start`` started."""


def _warm(threads: int, device: Device, worker_init: Callable[[], None] | None) -> None:
    """Each warm worker, once: the caller's ``worker_init`` (the node's makes it die with the
    node), then what ezkl reads when it loads (its thread count and device)."""
    if worker_init is not None:
        worker_init()
    os.environ.update(_child_env(threads, device))


def _prove_job(pkg: CircuitPackage, x: np.ndarray, padding: int, threads: int, device: Device) -> JobResult:
    (result,), _ = prove_slice(pkg, x[None], [0], [padding], threads, device)
    return result


class LocalBackend:
    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None, device: Device = Device()):
        if workers < 1:
            raise UsageError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.threads = threads_per_worker(workers, threads)
        self.device = device
        self._pool: ProcessPoolExecutor | None = None
        self._worker_init: Callable[[], None] | None = None

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

    # ---- warm workers, alive until close(): a job pays for ezkl's work, not for imports and a
    # model load (a fresh `proofmint prove` process paid +19 % on the wine MLP, +27 % on the LeNet)

    def start(self, worker_init: Callable[[], None] | None = None) -> "LocalBackend":
        self._worker_init = worker_init
        if self._pool is None:
            self._pool = self._spawn()
        return self

    def _spawn(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_warm, initargs=(self.threads, self.device, self._worker_init))
        for _ in range(self.workers):  # start (and warm) every worker now, not on the first job
            pool.submit(os.getpid)
        return pool

    def submit(self, pkg, x, padding=0):
        if self._pool is None:
            raise RuntimeError("start() the backend before submitting to it")
        try:
            fut = self._pool.submit(_prove_job, pkg, x, padding, self.threads, self.device)
        except BrokenProcessPool:  # a worker died since the last job (its jobs failed as WorkerLost)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._spawn()
            fut = self._pool.submit(_prove_job, pkg, x, padding, self.threads, self.device)
        return _relay(fut, (BrokenProcessPool,))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def package_files(pkg: CircuitPackage) -> dict[str, bytes]:
    """What a Ray node needs of a package to prove with it (no proving key where each proof
    makes its own: :func:`~proofmint.circuits.package.proving_key`)."""
    return {n: (pkg.path / n).read_bytes() for n in PACKAGE_FILES if not (n == "pk.key" and pkg.pk_on_demand)}


def _node_package(pkg: CircuitPackage, files_ref, srs_ref) -> CircuitPackage:
    """This node's copy of the circuit package, written once per node from the object store."""
    import ray
    from filelock import FileLock

    root = RAY_CACHE / pkg.circuit_id
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        # the node may hold the circuit from a package that makes its key on demand: no pk.key
        if not (root / "complete").exists() or (not pkg.pk_on_demand and not (root / "pk.key").exists()):
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


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'ray==2.60.0'") from None
    return ray


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = None, threads: int | None = None, device: Device = Device()):
        self.address = address
        self.threads = threads or 1
        self.device = device
        self.shipped: dict[str, list] = {}  # circuit id -> its package's refs in the object store
        self._owns_ray: bool | None = None  # None: not started; True: start() started Ray, close() stops it
        self._task = None

    def start(self, worker_init: Callable[[], None] | None = None) -> "RayBackend":
        """Connect to Ray once for this backend's life (a local Ray when no address is given and
        none runs in this process). ``worker_init`` is for local workers: Ray's are Ray's."""
        if self._owns_ray is None:
            ray = _ray()
            self._owns_ray = not ray.is_initialized()
            if self._owns_ray:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, runtime_env={"env_vars": {"RAY_DEDUP_LOGS": "0"}})
            self._task = ray.remote(num_cpus=self.threads)(_ray_task)
        return self

    def close(self) -> None:
        if self._owns_ray:
            _ray().shutdown()
        self._owns_ray, self._task = None, None
        self.shipped.clear()

    def _refs(self, pkg: CircuitPackage) -> list:
        """The package in the object store, put once per circuit; nested in a list, the refs
        are not fetched by a task unless its node lacks the files."""
        if pkg.circuit_id not in self.shipped:
            ray = _ray()
            self.shipped[pkg.circuit_id] = [ray.put(package_files(pkg)), ray.put(pkg.srs.read_bytes())]
        return self.shipped[pkg.circuit_id]

    def _remote(self, pkg: CircuitPackage, x: np.ndarray, index: int, padding: int):
        return self._task.remote(pkg, self._refs(pkg), x, index, padding, self.threads, self.device)

    def submit(self, pkg, x, padding=0):
        if self._task is None:
            raise RuntimeError("start() the backend before submitting to it")
        from ray.exceptions import WorkerCrashedError

        return _relay(self._remote(pkg, x, 0, padding).future(), (WorkerCrashedError,), pick=lambda out: out[0])

    def run(self, pkg, inputs, padding):
        started_here = self._owns_ray is None
        self.start()
        try:
            ray = _ray()
            pending = {self._remote(pkg, x, i, padding[i]): i for i, x in enumerate(inputs)}
            outs = []
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    pending.pop(ref)
                    outs.append(ray.get(ref))
                    progress.advance("prove")
        finally:
            if started_here:
                self.close()
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

