"""Warm prover workers: long-lived processes that load a circuit package once and prove many
inputs with it, so a job pays for ezkl's work, not for imports and key reads (a fresh
``proofmint prove`` process paid +19 % on the wine MLP, +27 % on the LeNet)."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_LOADED: dict[str, tuple] = {}  # in a worker: circuit id -> (package, float model)


@dataclass(frozen=True)
class ProofTask:
    workspace: str
    circuit: str
    inputs: list[list[float]]  # one input, or a batch circuit's real items (padded here)
    out: str


def _init(threads: int) -> None:
    """Each worker, once: it dies with the node (a kill -9 of the node leaves no worker proving
    for nobody), ezkl's thread count (read when ezkl loads), then the imports a proof needs, so
    the first job doesn't pay for them."""
    from proofmint.verifier.chain.keeper import die_with_parent

    die_with_parent()
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    importlib.import_module("proofmint.prover.proof")
    importlib.import_module("proofmint.ezkl_layer").version()


def _ready() -> int:
    return os.getpid()


def job_input(pkg, inputs: list[list[float]]) -> tuple[np.ndarray, int]:
    """One proof's input: one input, or a batch circuit's items with a short batch padded as
    ``proofmint prove`` pads it; returns it with the padding count."""
    from proofmint.circuits.samples import batches

    items = np.stack([np.asarray(x, dtype=np.float64).reshape(pkg.input_shape) for x in inputs])
    chunk = batches(items, pkg.batch_size)[0]
    return (chunk.items if pkg.batch_size > 1 else chunk.items[0]), pkg.batch_size - chunk.real


def prove_task(task: ProofTask, threads: int) -> dict:
    """Prove one input (or one batch) in this warm worker; writes the bundle to ``task.out``."""
    from proofmint.circuits import package as package_mod
    from proofmint.models.onnx_model import load_onnx
    from proofmint.prover.proof import prove_one
    from proofmint.store import Workspace

    started = time.perf_counter()
    if task.circuit not in _LOADED:
        pkg = package_mod.load(Workspace.resolve(task.workspace), task.circuit)
        _LOADED[task.circuit] = (pkg, load_onnx(pkg.onnx))
    pkg, model = _LOADED[task.circuit]
    x, padding = job_input(pkg, task.inputs)
    work = Path(tempfile.mkdtemp(prefix="proofmint-node-"))
    try:
        bundle = prove_one(pkg, model, x, work, threads=threads, padding=padding)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bundle.save(Path(task.out))
    return {"bundle": task.out, "seconds": round(time.perf_counter() - started, 3), "pid": os.getpid()}


class WarmPool:
    """``workers`` spawned processes, ``threads`` prover threads each, alive for the node's life."""

    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init, initargs=(threads,))
        for _ in range(workers):  # start (and warm) every worker now, not on the first job
            self.pool.submit(_ready)

    def submit(self, task: ProofTask) -> Future:
        return self.pool.submit(prove_task, task, self.threads)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
