"""The circuit's run on an input (its witness): what calibration measures and the prover proves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from proofmint import ezkl_layer
from proofmint.errors import InputOutOfRangeError

OUT_OF_RANGE_HINT = ("a value likely fell outside the ranges the circuit was calibrated for: "
                     "recompile with this input among the calibration samples (--calibration FILE)")


def split_items(outputs: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """A batch circuit's flat outputs as one concatenated output vector per item."""
    per_tensor = [o.reshape(batch, -1) for o in outputs]
    return [np.concatenate([t[i] for t in per_tensor]) for i in range(batch)]


def generate(compiled: Path, x: np.ndarray, work_dir: Path, stem: str = "witness",
             vk: Path | None = None, srs: Path | None = None,
             sizes: list[int] | None = None) -> tuple[Path, dict]:
    """Run the quantized model on one input (or one batch of them, stacked); returns the witness
    path and its contents.

    ``vk``/``srs`` are needed only when inputs or outputs are hashed or committed.
    """
    inp = ezkl_layer.write_input(work_dir / f"{stem}.input.json", x, sizes)
    out = work_dir / f"{stem}.json"
    witness = ezkl_layer.gen_witness(inp, compiled, out, vk=vk, srs=srs, hint=OUT_OF_RANGE_HINT)
    return out, witness


def check_lookups(witness: dict, lookup_range: list[int], where: str = "the input") -> None:
    """Refuse a witness whose lookup inputs fall outside the circuit's tables. ezkl would try to
    prove it, and its prover then hangs for ever (a rayon worker panics out of its pool)."""
    lo, hi = witness.get("min_lookup_inputs", 0), witness.get("max_lookup_inputs", 0)
    if lookup_range[0] == lookup_range[1] == 0 or lookup_range[0] <= lo <= hi <= lookup_range[1]:
        return
    raise InputOutOfRangeError(
        f"{where} drives a non-linear layer to {lo if lo < lookup_range[0] else hi}, outside the "
        f"circuit's lookup table [{lookup_range[0]}, {lookup_range[1]}] (fixed-point units) — "
        "recompile with this input among the calibration samples (--calibration FILE)")
