"""One proof: witness, ``ezkl.prove``, the proof checked, the float reference, the bundle.

This is the unit every proving backend runs (in its own process: ezkl holds the GIL).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer
from proofmint.circuits import witness as witness_mod
from proofmint.circuits.package import CircuitPackage, proving_key
from proofmint.errors import ProvingError
from proofmint.faults import failpoint
from proofmint.models.onnx_model import OnnxModel

from .bundle import ProofBundle


def prove_one(pkg: CircuitPackage, model: OnnxModel, x: np.ndarray, work: Path, *, threads: int,
              device: str = "cpu", padding: int = 0) -> ProofBundle:
    """Witness + proof + reference run for one input, or one batch of ``pkg.batch_size``
    inputs (stacked, the last ``padding`` of them padding), in the calling process."""
    t0 = time.perf_counter()
    wpath, w = witness_mod.generate(pkg.compiled, x, work, vk=pkg.vk, srs=pkg.srs, sizes=pkg.input_sizes)
    witness_mod.check_lookups(w, pkg.lookup_range)
    t1 = time.perf_counter()
    proof_path = work / "proof.json"
    made: dict = {}  # a circuit compiled with keys on demand: its key's seconds, apart
    with proving_key(pkg, made) as pk:
        proving = time.perf_counter()
        ezkl_layer.prove(wpath, pkg.compiled, pk, proof_path, pkg.srs, hint=witness_mod.OUT_OF_RANGE_HINT)
    failpoint("prove:proof-written")
    t2 = time.perf_counter()
    # ezkl proves unsatisfied circuits without complaint (a value past a range check or a
    # lookup table): a proof leaves here only if it verifies (milliseconds next to proving).
    ok, why = ezkl_layer.verify(proof_path, pkg.settings, pkg.vk, pkg.srs)
    if not ok:
        raise ProvingError(f"the proof does not verify ({why}) — {witness_mod.OUT_OF_RANGE_HINT}")
    outputs = ezkl_layer.decode_outputs(w, pkg.output_scales)
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
        input=None if pkg.visibility.input_private else x.ravel().tolist(),
        outputs=[o.tolist() for o in outputs], reference_outputs=[r.tolist() for r in reference],
        max_abs_diff=float(max(np.abs(g - r).max() for g, r in zip(got, want))),
        argmax_agrees=all(bool(g.argmax() == r.argmax()) for g, r in zip(got, want))
        if pkg.task == "classification" else None,
        ezkl_proof=ezkl_proof,
        timings={"witness": round(t1 - t0, 3), "prove": round(t2 - proving, 3),
                 "reference": round(t3 - t2, 3), **made},
        prover={"backend": "ezkl-icicle-gpu" if device == "gpu" else "ezkl-cpu",
                "threads": threads, "ezkl": ezkl_layer.version()},
        batch_size=pkg.batch_size, padding=padding,
    )
