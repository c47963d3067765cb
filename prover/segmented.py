"""Proving one inference of a segmented model: the segments' witnesses in order (one forward
pass, each segment fed the previous one's decoded outputs), then their proofs in parallel,
each worker holding only its segment's key.

Workers are processes on this machine (``workers``, threads split among them) or Ray tasks
(``backend="ray"``), one per segment, each node caching the package of the segments it
proves. The bundle holds every segment's proof, the links between them and the decoded final
outputs; every proof is checked before it leaves, and every link.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from proofmint import encoding, ezkl_layer, progress
from proofmint.circuits import segmented as segmented_mod
from proofmint.circuits.package import KEY_HEADROOM, CircuitPackage, clear_stale_keys, proving_key
from proofmint.circuits.segmented import SegmentedPackage
from proofmint.errors import InvalidInputError, NotFoundError, ProofmintError, ProvingError, UsageError
from proofmint.inputs import check_range, read_inputs
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import load_onnx
from proofmint.store import Workspace, atomic_write_json, canonical_json, sha256_bytes

from .backends import WorkerStats, threads_per_worker
from .bundle import ProofBundle, load_bundle
from .outputs import Failure, output_paths

FORMAT = "proofmint.segmented-bundle/1"


@dataclass
class SegmentProof:
    circuit_id: str
    ezkl_proof: dict  # ezkl's proof.json: proof bytes and instances
    timings: dict = field(default_factory=dict)
    worker: str = ""

    @property
    def instances(self) -> list[str]:
        return [f for group in self.ezkl_proof["instances"] for f in group]


@dataclass
class SegmentedBundle:
    """One inference of a segmented model: a proof per segment and the links between them."""

    circuit_id: str  # the segmented package's
    model_id: str
    srs_kind: str
    visibility: encoding.Visibility
    link: str
    input_shape: list[int]
    input: list[float] | None
    outputs: list[list[float]]  # the last segment's decoded outputs: the model's
    reference_outputs: list[list[float]]
    max_abs_diff: float
    argmax_agrees: bool | None
    segments: list[SegmentProof]
    timings: dict = field(default_factory=dict)
    prover: dict = field(default_factory=dict)
    format: str = FORMAT
    batch_size: int = 1
    padding: int = 0

    @property
    def count(self) -> int:
        return 1

    @property
    def instances(self) -> list[str]:
        """Every segment's instances, in order: what a replay key covers."""
        return [f for s in self.segments for f in s.instances]

    @property
    def proof_hash(self) -> str:
        return sha256_bytes(canonical_json([{"proof": s.ezkl_proof.get("proof"),
                                             "instances": s.ezkl_proof.get("instances")} for s in self.segments]))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(Path(path), self.to_dict())


def load_any(path: str | Path) -> ProofBundle | SegmentedBundle:
    """A proof bundle of either kind: one circuit's, or a segmented model's chain of proofs."""
    path = Path(path)
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None  # load_bundle says what is wrong with it
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return from_dict(data, str(path))
    return load_bundle(path)


def from_dict(data: dict, where: str) -> SegmentedBundle:
    try:
        segs = [SegmentProof(**s) for s in data["segments"]]
        vis = encoding.Visibility.of(data["visibility"])
        fields_ = {k: v for k, v in data.items() if k not in ("segments", "visibility")}
        bundle = SegmentedBundle(**fields_, visibility=vis, segments=segs)
        for s in segs:
            if not (isinstance(s.ezkl_proof, dict) and isinstance(s.ezkl_proof.get("proof"), list)
                    and isinstance(s.ezkl_proof.get("instances"), list)):
                raise TypeError("a segment's ezkl_proof lacks proof bytes or instances")
    except (KeyError, TypeError, ProofmintError) as exc:
        raise InvalidInputError(f"{where} is not a segmented proof bundle, or was edited ({exc})") from None
    return bundle


def _witness_chain(pkgs: list[CircuitPackage], x: np.ndarray, work: str) -> list[str]:
    """In a child process: every segment's witness, in order. Returns their paths."""
    _, paths = segmented_mod.chain_outputs(
        [p.compiled for p in pkgs], [p.output_scales for p in pkgs], [p.input_sizes for p in pkgs], x,
        Path(work), [p.lookup_range for p in pkgs], [p.vk for p in pkgs], [p.srs for p in pkgs])
    return [str(p) for p in paths]


def _prove_segment(pkg: CircuitPackage, witness: str, out: str, pk: str | None = None) -> dict:
    """In a child process: one segment's proof with ``pk`` (default: its own key, made here
    first where the package keeps none), checked before it is returned."""
    timings: dict = {}
    with contextlib.nullcontext(Path(pk)) if pk else proving_key(pkg, timings) as key:
        t = time.perf_counter()
        ezkl_layer.prove(Path(witness), pkg.compiled, key, Path(out), pkg.srs)
        seconds = time.perf_counter() - t
    ok, why = ezkl_layer.verify(Path(out), pkg.settings, pkg.vk, pkg.srs)
    if not ok:
        raise ProvingError(f"segment {pkg.circuit_id[:12]}'s proof does not verify ({why})")
    return timings | {"prove": round(seconds, 3), "peak_rss_mb": _peak_mb()}


def _make_key(compiled: Path, vk: Path, pk: Path, srs: Path) -> float:
    """In a child process: a key made on demand, by a process whose memory (setup's, about
    the key's size again) is gone before the proof's begins. Returns its peak MB."""
    ezkl_layer.setup(compiled, vk, pk, srs)
    return _peak_mb()


def _peak_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def prove_segmented(spkg: SegmentedPackage, ws: Workspace, *, input: str | Path, out: str | Path | None,
                    workers: int = 1, threads: int | None = None, backend: str = "local",
                    address: str | None = None) -> tuple[list[str], list, list[WorkerStats]]:
    """Every input in ``input`` proven through the chain; one bundle per input. Returns the
    bundles, the failures (index, error, type) and each worker's memory."""
    pkgs = spkg.packages(ws)
    if not (spkg.path / "model.onnx").is_file():
        raise NotFoundError(f"segmented circuit {spkg.circuit_id[:16]} has no model.onnx — compile it again")
    model = load_onnx(spkg.path / "model.onnx")
    inputs = read_inputs(input, spkg.input_shape, spkg.input_sizes)
    paths = output_paths(out, len(inputs))
    bundles, failures, stats = [], [], []
    for i, x in enumerate(inputs):
        try:
            check_range(x, spkg.input_range, f"input {i}" if len(inputs) > 1 else f"input {input}")
            bundle, st = prove_one(spkg, pkgs, model, x, workers=workers, threads=threads,
                                   backend=backend, address=address)
            bundle.save(paths[i])
            bundles.append(str(paths[i]))
            stats.extend(st)
        except ProofmintError as exc:
            if len(inputs) == 1:
                raise
            failures.append(Failure(i, str(exc), type(exc).__name__))
    return bundles, failures, stats


def prove_one(spkg: SegmentedPackage, pkgs: list[CircuitPackage], model, x: np.ndarray, *, workers: int,
              threads: int | None, backend: str, address: str | None) -> tuple[SegmentedBundle, list[WorkerStats]]:
    work = Path(tempfile.mkdtemp(prefix="proofmint-segments-"))
    try:
        t0 = time.perf_counter()
        with progress.step("witness every segment, in order"):
            witnesses = run_in_child(_witness_chain, pkgs, x, str(work), what="segment witnesses")
        t1 = time.perf_counter()
        made = [p for p in pkgs if p.pk_on_demand]
        if made:
            progress.note(f"{len(made)} of {len(pkgs)} segment keys are made just before their proofs and deleted "
                          "after (compiled with keys on demand)")
            for p in made:
                clear_stale_keys(p.path)
        if backend == "ray":
            proofs, stats = _prove_on_ray(pkgs, witnesses, address, threads)
        elif backend == "local":
            proofs, stats = _prove_locally(pkgs, witnesses, work, workers, threads)
        else:
            raise UsageError(f"unknown backend '{backend}' — choose local or ray")
        t2 = time.perf_counter()
        segments = [SegmentProof(p.circuit_id, proof, timing, worker)
                    for p, (proof, timing, worker) in zip(pkgs, proofs)]
        last = json.loads(Path(witnesses[-1]).read_text())
        outputs = ezkl_layer.decode_outputs(last, pkgs[-1].output_scales)
        reference = [o.ravel() for o in model.run(x)]
        diffs = [np.abs(np.ravel(o) - r).max() for o, r in zip(outputs, reference)]
        bundle = SegmentedBundle(
            circuit_id=spkg.circuit_id, model_id=spkg.model_id, srs_kind=spkg.srs_kind,
            visibility=spkg.visibility, link=spkg.link, input_shape=spkg.input_shape,
            input=None if spkg.visibility.input_private else x.ravel().tolist(),
            outputs=[np.ravel(o).tolist() for o in outputs], reference_outputs=[r.tolist() for r in reference],
            max_abs_diff=float(max(diffs)),
            argmax_agrees=bool(np.concatenate([np.ravel(o) for o in outputs]).argmax()
                               == np.concatenate(reference).argmax()) if spkg.task == "classification" else None,
            segments=segments,
            timings={"witness": round(t1 - t0, 3), "prove_wall": round(t2 - t1, 3),
                     "prove_sum": round(sum(s.timings.get("prove", 0) for s in segments), 3)},
            prover={"backend": backend, "workers": len({s.worker for s in segments}), "ezkl": ezkl_layer.version()})
        return bundle, stats
    finally:
        shutil.rmtree(work, ignore_errors=True)


def workers_the_disk_holds(pkgs: list[CircuitPackage], workers: int) -> int:
    """``workers`` (at most one a segment), or fewer where segments compiled with keys on demand
    would make more keys at once than the disk holds (each worker makes its key before its proof)."""
    workers = min(workers, len(pkgs))
    made = [p.pk_bytes + KEY_HEADROOM for p in pkgs if p.pk_on_demand]
    if not made or workers < 2 or workers * max(made) <= (free := shutil.disk_usage(pkgs[0].path).free):
        return workers
    k = max(1, free // max(made))
    progress.note(f"proving on {k} worker{'s' * (k > 1)}, not {workers}: each makes a "
                  f"{max(made) / 2**30:.1f} GiB key and {free / 2**30:.1f} GiB of disk is free")
    return k


def _prove_locally(pkgs: list[CircuitPackage], witnesses: list[str], work: Path, workers: int,
                   threads: int | None) -> tuple[list, list[WorkerStats]]:
    """The segments' proofs on up to ``workers`` processes at once, cores split among them."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    k = workers_the_disk_holds(pkgs, workers)
    per = threads_per_worker(k, threads)
    name = f"prove {len(pkgs)} segments on {k} worker{'s' * (k > 1)}"

    @progress.in_context
    def one(i: int):
        out, env, made = work / f"proof-{i}.json", {"RAYON_NUM_THREADS": str(per)}, {}

        def setup(*paths):
            made["key_peak_rss_mb"] = run_in_child(_make_key, *paths, env=env, what=f"segment {i}'s proving key")

        # the key (made on demand) in a process of its own, then the proof in another; this thread
        # holds the key's folder, so it is deleted however either child ends (killed: out of memory)
        with proving_key(pkgs[i], made, setup) as pk:
            timing = run_in_child(_prove_segment, pkgs[i], witnesses[i], str(out), str(pk), env=env,
                                  what=f"segment {i}'s proof")
        timing = made | timing | {"peak_rss_mb": max(timing["peak_rss_mb"], made.get("key_peak_rss_mb", 0))}
        progress.advance(name)
        proof = json.loads(out.read_text())
        proof.pop("pretty_public_inputs", None)
        return proof, timing | {"threads": per}, f"local:{i % k}"

    with progress.step(name, total=len(pkgs)), ThreadPoolExecutor(k) as pool:
        proofs = list(pool.map(one, range(len(pkgs))))
    stats = [WorkerStats(f"segment {i}", 1, per, t["peak_rss_mb"]) for i, (_, t, _) in enumerate(proofs)]
    return proofs, stats


def _ray_segment(pkg: CircuitPackage, refs: list, witness: bytes, threads: int) -> tuple[dict, dict, str]:
    from .backends import _node_package

    os.environ["RAYON_NUM_THREADS"] = str(threads)
    local = _node_package(pkg, refs[0], refs[1])
    d = Path(tempfile.mkdtemp(prefix="proofmint-segment-"))
    try:
        (d / "witness.json").write_bytes(witness)
        timing = _prove_segment(local, str(d / "witness.json"), str(d / "proof.json"))
        proof = json.loads((d / "proof.json").read_text())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    proof.pop("pretty_public_inputs", None)
    return proof, timing | {"threads": threads}, f"{os.uname().nodename}:{os.getpid()}"


def _prove_on_ray(pkgs: list[CircuitPackage], witnesses: list[str], address: str | None,
                  threads: int | None) -> tuple[list, list[WorkerStats]]:
    """One Ray task per segment: one inference across the cluster's nodes."""
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'ray==2.60.0'") from None
    from .backends import package_files

    threads = threads or 1
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=threads)(_ray_segment)
        pending = []
        for pkg, w in zip(pkgs, witnesses):
            refs = [ray.put(package_files(pkg)), ray.put(pkg.srs.read_bytes())]
            pending.append(task.remote(pkg, refs, Path(w).read_bytes(), threads))
        name = f"prove {len(pkgs)} segments on Ray"
        with progress.step(name, total=len(pkgs)):
            outs = []
            for ref in pending:
                outs.append(ray.get(ref))
                progress.advance(name)
    finally:
        if started_here:
            ray.shutdown()
    stats = [WorkerStats(where, 1, threads, t["peak_rss_mb"]) for _, t, where in outs]
    return outs, stats
