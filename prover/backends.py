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

Both return one result per job (an input, or a batch of them), in job order: ``{"index", "bundle"}`` or
``{"index", "error", "type"}``, plus per-worker memory figures.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from proofmint import progress
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ProofmintError, UsageError
from proofmint.jobs import run_in_child

PACKAGE_FILES = ("settings.json", "model.compiled", "pk.key", "vk.key", "model.onnx")


GPU_ENV = "ICICLE_BACKEND_INSTALL_DIR"  # what ezkl's `gpu-accelerated` build reads (src/execute.rs)
DEVICE_ENV = "PROOFMINT_DEVICE"  # set for prover workers that were asked for the GPU


def check_gpu() -> dict:
    """What ``--device gpu`` needs: an ezkl built with the cargo feature `gpu-accelerated`
    (ICICLE v3), ``ICICLE_BACKEND_INSTALL_DIR`` pointing at an ICICLE CUDA backend, and an
    NVIDIA GPU. Refuses with what is missing otherwise: the PyPI wheels are CPU-only builds
    with no ICICLE code at all."""
    import ezkl

    lib = next(Path(ezkl.__file__).parent.glob("ezkl*.so"), None)
    if lib is None or b"icicle" not in lib.read_bytes().lower():
        raise UsageError(
            f"--device gpu: this ezkl ({ezkl_version()}, {lib.name if lib else 'no library'}) has no "
            "ICICLE code — the PyPI wheels are CPU-only; build ezkl from source with `--features "
            "gpu-accelerated` and set ICICLE_BACKEND_INSTALL_DIR to an ICICLE CUDA backend, or "
            "prove with --device cpu (the default)")
    backend = os.environ.get(GPU_ENV)
    if not backend or not Path(backend).is_dir():
        raise UsageError(f"--device gpu: {GPU_ENV} is {'unset' if not backend else 'not a folder: ' + backend}"
                         " — point it at the ICICLE CUDA backend install (its lib/backend folder)")
    if gpu_name() is None:
        raise UsageError("--device gpu: no NVIDIA GPU found (nvidia-smi lists none)")
    return {GPU_ENV: backend, DEVICE_ENV: "gpu"}


def gpu_name() -> str | None:
    """The NVIDIA GPU(s) nvidia-smi lists, or None."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                       capture_output=True, text=True)
    return r.stdout.strip() or None


def ezkl_version() -> str:
    from importlib.metadata import version

    return version("ezkl")


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    return threads or max(1, (os.cpu_count() or 1) // workers)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def prove_slice(pkg: CircuitPackage, inputs: np.ndarray, indices: list[int], padding: list[int]) -> dict:
    """Prove some jobs in this process; a failed job is reported and the rest go on. A job is
    one input, or for a batch circuit one batch of inputs whose last ``padding`` are padding."""
    from proofmint.models.onnx_model import load_onnx

    from .prove import prove_one

    model = load_onnx(pkg.onnx)
    work = Path(tempfile.mkdtemp(prefix="proofmint-prove-"))
    threads = int(os.environ.get("RAYON_NUM_THREADS", "1"))
    results = []
    try:
        for i, x, pad in zip(indices, inputs, padding):
            try:
                bundle = prove_one(pkg, model, x, work, threads, padding=pad)
                results.append({"index": i, "bundle": bundle.to_dict()})
            except ProofmintError as exc:
                results.append({"index": i, "error": str(exc), "type": type(exc).__name__})
            progress.advance("prove")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"results": results, "peak_rss_mb": _peak_rss_mb(), "pid": os.getpid()}


class Backend(Protocol):
    name: str

    def run(self, pkg: CircuitPackage, inputs: np.ndarray, padding: list[int]
            ) -> tuple[list[dict], list[dict]]:
        """(one result per job in job order, one memory/throughput record per worker)."""


class LocalBackend:
    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None, env: dict | None = None):
        if workers < 1:
            raise UsageError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.threads = threads_per_worker(workers, threads)
        self.env = env or {}

    def run(self, pkg, inputs, padding):
        k = min(self.workers, len(inputs))
        slices = [list(range(w, len(inputs), k)) for w in range(k)]
        env = {"RAYON_NUM_THREADS": str(self.threads), **self.env}

        def work(idx: list[int]) -> dict:
            return run_in_child(prove_slice, pkg, inputs[idx], idx, [padding[i] for i in idx], env=env,
                                what="prove")

        with ThreadPoolExecutor(k) as pool:
            done = list(pool.map(work, slices))
        results = sorted((r for d in done for r in d["results"]), key=lambda r: r["index"])
        workers = [{"worker": w, "inputs": len(s), "threads": self.threads, "peak_rss_mb": d["peak_rss_mb"]}
                   for w, (s, d) in enumerate(zip(slices, done))]
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
              threads: int, env: dict) -> dict:
    os.environ.update({"RAYON_NUM_THREADS": str(threads), **env})
    local = _node_package(pkg, refs[0], refs[1])
    out = prove_slice(local, x[None], [index], [padding])
    return {"result": out["results"][0], "peak_rss_mb": out["peak_rss_mb"], "pid": out["pid"],
            "node": os.uname().nodename}


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = None, threads: int | None = None, env: dict | None = None):
        self.address = address
        self.threads = threads or 1
        self.env = env or {}

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
                    ray.put(Path(pkg.srs_path).read_bytes())]
            task = ray.remote(num_cpus=self.threads)(_ray_task)
            pending = {task.remote(pkg, refs, x, i, padding[i], self.threads, self.env): i
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
        results = sorted((o["result"] for o in outs), key=lambda r: r["index"])
        by_worker: dict = {}
        for o in outs:
            w = by_worker.setdefault((o["node"], o["pid"]), {"worker": f"{o['node']}:{o['pid']}",
                                                             "inputs": 0, "threads": self.threads})
            w["inputs"] += 1
            w["peak_rss_mb"] = o["peak_rss_mb"]
        return results, list(by_worker.values())


def make_backend(backend: str, workers: int, threads: int | None, address: str | None,
                 device: str = "cpu") -> Backend:
    if device not in ("cpu", "gpu"):
        raise UsageError(f"unknown device '{device}' — choose cpu or gpu")
    env = check_gpu() if device == "gpu" else {}
    if backend == "local":
        if address:
            raise UsageError("--address is for --backend ray; drop it or add --backend ray")
        return LocalBackend(workers, threads, env)
    if backend == "ray":
        return RayBackend(address, threads, env)
    raise UsageError(f"unknown backend '{backend}' — choose local or ray")

