"""The prover node's engine: claims queued items, proves them on its backend, mints them.

One thread runs the loop; proofs run on one :mod:`proofmint.prover.backends` backend for the
node's life, as ``prove``'s do: warm local workers, or Ray (connected once, each circuit's
package put into its object store once). Mints are sent one at a time (one signer, one nonce
sequence). Everything it does is a queue transition first.
Before its first mint it reconciles the queue with the chain: an item marked done whose token
the chain does not hold for that item's proof (a chain restarted from an older state, another
chain) is minted again — the contract's replay guard makes that safe.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

import numpy as np

from proofmint.errors import ChainError, NotFoundError, ProofmintError, TransactionRevertedError
from proofmint.prover.backends import WorkerLost, make_backend, threads_per_worker
from proofmint.store import Workspace

from proofmint.verifier.node.queue import Queue

CHAIN_RETRY_S = 5.0
PREFETCH = 2  # tasks handed to each worker at a time


class Node:
    """The engine behind ``proofmint serve``: start() it, stop() it; the queue outlives both."""

    def __init__(self, ws: Workspace, *, rpc_url: str | None, workers: int = 1, threads: int | None = None,
                 backend: str = "local", address: str | None = None):
        self.ws, self.rpc_url = ws, rpc_url  # None: the workspace's embedded chain
        self.queue = Queue(ws.node_queue())
        private_dir(ws.node_bundle("x").parent)
        self.workers = workers
        self.threads = threads_per_worker(workers, threads)
        self.prover = make_backend(backend, workers, self.threads, address)  # started with the node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proofmint-node", daemon=True)
        self._packages: dict = {}
        self._chain_down_until = 0.0
        self.reconciled: int | None = None  # items sent back to minting at start; None: not yet
        self.recovered = 0
        self.last_error: str | None = None

    # ---- lifecycle ----

    def start(self) -> "Node":
        from proofmint.verifier.chain.keeper import die_with_parent

        self.recovered = self.queue.recover()
        # From the caller's thread (Ray is initialised from there); a kill -9 of the node
        # leaves no local worker proving for nobody.
        self.prover.start(worker_init=functools.partial(die_with_parent, os.getpid()))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.prover.close()

    def package(self, circuit: str):
        """A circuit's package, loaded once (the HTTP side checks submissions against it)."""
        from proofmint.circuits import package as package_mod

        if circuit not in self._packages:
            pkg = package_mod.load(self.ws, circuit)
            self._packages[circuit] = self._packages[pkg.circuit_id] = pkg
        return self._packages[circuit]

    # ---- the loop ----

    def _run(self) -> None:
        engine = _Engine(self)
        while not self._stop.is_set():
            busy = engine.fill()
            busy |= engine.collect()
            busy |= self._mint_proved()
            if not busy:
                self._stop.wait(0.2)

    def _chain_down(self, exc: ProofmintError) -> None:
        self.last_error = str(exc)
        self._chain_down_until = time.monotonic() + CHAIN_RETRY_S

    def reconcile(self) -> int:
        """Send back to minting every done item whose token the chain doesn't hold for its
        proof (by the token's recorded proof hash); returns how many."""
        from eth_utils import keccak

        from proofmint.prover.bundle import load_bundle
        from proofmint.verifier.chain.client import connect
        from proofmint.verifier.chain.records import deployment

        items = self.queue.minted_items()
        if not items:
            return 0
        lost, hashes = [], {}
        with connect(rpc_url=self.rpc_url, workspace=self.ws) as c:
            try:
                d = deployment(c)
                total = c.call(d.token.functions.totalMinted(), d.abi)
            except NotFoundError:  # nothing deployed here (any more): every token is gone
                d, total = None, 0
            for job, idx, bundle, token in items:
                if bundle not in hashes:
                    hashes[bundle] = "0x" + keccak(load_bundle(bundle).proof_bytes).hex()
                if not 1 <= token <= total or d.token_record(token)["proofHash"] != hashes[bundle]:
                    lost.append((job, idx))
        self.queue.remint(lost)
        return len(lost)

    def _mint_proved(self) -> bool:
        if time.monotonic() < self._chain_down_until:
            return False
        from proofmint.verifier.chain.mint import mint

        if self.reconciled is None:
            try:
                self.reconciled = self.reconcile()
            except ChainError as exc:  # unreachable: reconcile (then mint) once it answers
                self._chain_down(exc)
                return False
        did = False
        for bundle, keys, creator in self.queue.to_mint():
            if self._stop.is_set():
                break
            self.queue.minting(keys)
            try:
                m = mint(bundle, to=creator, rpc_url=self.rpc_url, workspace=self.ws, resume=True,
                         as_prover=True)  # the operator proved it: named, and paid a license's prover share
            except TransactionRevertedError as exc:
                self.queue.failed(keys, str(exc))
            except ChainError as exc:  # unreachable, or its block lost: keep the items, try again
                self.queue.back_to_proved(keys)
                self._chain_down(exc)
                return did
            except ProofmintError as exc:
                self.queue.failed(keys, str(exc))
            else:
                self.queue.minted(keys, m.token_ids)
            did = True
        return did


class _Engine:
    """Claims queued items while the backend has room and records what it finishes."""

    def __init__(self, node: Node):
        self.node = node
        self.inflight: dict[Future, tuple[list[tuple[str, int]], Path]] = {}  # -> (items, bundle path)

    def fill(self) -> bool:
        # One task waiting behind each running one: a worker never idles between two proofs
        # for the loop's round trip (claim, SQLite commit, hand-over).
        q, did = self.node.queue, False
        while len(self.inflight) < PREFETCH * self.node.workers:
            circuit = q.next_circuit()
            if circuit is None:
                break
            try:
                pkg = self.node.package(circuit)
            except ProofmintError as exc:
                keys = [(job, idx) for _, job, idx in q.claim(1)]
                q.failed(keys, str(exc))
                continue
            claimed = q.claim(pkg.batch_size, same_circuit=True)
            if not claimed:
                break
            keys = [(job, idx) for _, job, idx in claimed]
            job, idx = keys[0]
            try:
                x, padding = job_input(pkg, [q.input_of(j, i) for j, i in keys])
                fut = self.node.prover.submit(pkg, x, padding)
            except Exception as exc:  # noqa: BLE001 - the node must outlive one bad job
                q.failed(keys, _why(exc))
                continue
            self.inflight[fut] = (keys, self.node.ws.node_bundle(f"{job}-{idx}"))
            did = True
        return did

    def collect(self) -> bool:
        if not self.inflight:
            return False
        done, _ = wait(list(self.inflight), timeout=0.2, return_when=FIRST_COMPLETED)
        for fut in done:
            keys, out = self.inflight.pop(fut)
            try:
                result = fut.result()
                if result.bundle is not None:
                    result.bundle.save(out)
            except WorkerLost:  # a worker died (killed, out of memory): prove them again
                self.node.queue.requeue(keys)
            except Exception as exc:  # noqa: BLE001 - the node must outlive one bad job
                self.node.queue.failed(keys, _why(exc))
            else:
                if result.bundle is None:
                    self.node.queue.failed(keys, result.error or "the proof failed")
                else:
                    self.node.queue.proved(keys, str(out))
        return bool(done)


def _why(exc: Exception) -> str:
    """An item's failure as the queue records it: a user's error as it reads, anything else as
    what it is."""
    return str(exc) if isinstance(exc, ProofmintError) else f"internal error: {type(exc).__name__}: {exc}"


def job_input(pkg, inputs: list[list[float]]) -> tuple[np.ndarray, int]:
    """One proof's input from queued items: one input, or a batch circuit's items with a short
    batch padded as ``proofmint prove`` pads it; returns it with the padding count."""
    from proofmint.circuits.samples import batches

    items = np.stack([np.asarray(x, dtype=np.float64).reshape(pkg.input_shape) for x in inputs])
    chunk = batches(items, pkg.batch_size)[0]
    return (chunk.items if pkg.batch_size > 1 else chunk.items[0]), pkg.batch_size - chunk.real


def private_dir(path: Path) -> Path:
    """A folder only its owner can read (0700): bundles hold the inputs users submitted."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@contextlib.contextmanager
def running(node: Node):
    node.start()
    try:
        yield node
    finally:
        node.stop()
