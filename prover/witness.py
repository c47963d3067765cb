"""Witness generation and decoding of the circuit's (quantized) outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from proofmint.errors import InputOutOfRangeError, ezkl_error


def ezkl_input(x: np.ndarray, sizes: list[int] | None = None) -> dict:
    """ezkl's input JSON for one or more flat inputs (rows of ``x``): one list per graph input
    (``sizes`` = each input's length; default one input), each holding every row's values for
    that input back to back."""
    rows = np.asarray(x, dtype=np.float64)
    rows = rows.reshape(-1, rows.size if sizes is None else sum(sizes)) if rows.size else rows.reshape(0, 0)
    sizes = sizes or [rows.shape[1]]
    bounds = np.cumsum([0, *sizes])
    return {"input_data": [rows[:, a:b].ravel().tolist() for a, b in zip(bounds[:-1], bounds[1:])]}


def write_input(path: Path, x: np.ndarray, sizes: list[int] | None = None) -> Path:
    path.write_text(json.dumps(ezkl_input(x, sizes)))
    return path


def decode_outputs(witness: dict, output_scales: list[int]) -> list[np.ndarray]:
    """The circuit's outputs as floats, one flat array per model output."""
    import ezkl

    return [
        np.array([ezkl.felt_to_float(f, scale) for f in felts], dtype=np.float64)
        for felts, scale in zip(witness["outputs"], output_scales)
    ]


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
    import ezkl

    inp = write_input(work_dir / f"{stem}.input.json", x, sizes)
    out = work_dir / f"{stem}.json"
    try:
        witness = ezkl.gen_witness(str(inp), str(compiled), str(out),
                                   vk_path=str(vk) if vk else None,
                                   srs_path=str(srs) if srs else None)
    except Exception as exc:
        raise ezkl_error("gen_witness", exc, hint="the input may lie outside the ranges the "
                         "circuit was calibrated for") from None
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


def agreement(reference: list[np.ndarray], quantized: list[np.ndarray], task: str,
              tolerance: float = 0.01) -> dict:
    """How closely the circuit's outputs follow the float model's over a set of inputs.

    ``reference`` and ``quantized`` hold one concatenated output vector per input. The error
    is judged against the span of the float outputs (max - min over every sample), the scale
    on which a reader of the outputs sees it; classifiers also get argmax agreement.
    """
    ref, q = np.stack(reference), np.stack(quantized)
    err = np.abs(ref - q)
    span = float(ref.max() - ref.min())
    report = {
        "samples": len(ref),
        "max_abs_error": float(err.max()),
        "mean_abs_error": float(err.mean()),
        "output_range": span,
        # a constant output has no span: its error is judged against its magnitude (or 1)
        "relative_max_error": float(err.max()) / (span if span > 1e-9 else max(float(np.abs(ref).max()), 1.0)),
    }
    if task == "classification":
        same = ref.argmax(1) == q.argmax(1)
        report["argmax_agreement"] = float(same.mean())
        # A near-tie (top-2 margin within the tolerance) can flip under any error the tolerance
        # allows; the decisions that count are the others.
        top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.zeros((len(ref), 2))
        decisive = (top2[:, 1] - top2[:, 0]) > tolerance * span
        report["decisive_samples"] = int(decisive.sum())
        report["argmax_agreement_decisive"] = float(same[decisive].mean()) if decisive.any() else 1.0
    return report
