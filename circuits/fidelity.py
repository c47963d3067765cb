"""Fidelity: how closely a circuit's decoded outputs follow the float model's.

The promise a proof makes to a reader of its outputs: they are the model's outputs within a
tolerance of their span, and for a classifier argmax agrees. Measured at compile time on
held-out samples (recorded in the package), and again for every proof (recorded in the bundle).
"""

from __future__ import annotations

import hashlib

import numpy as np

MIN_ARGMAX_AGREEMENT = 0.99
DEFAULT_TOLERANCE = 0.01  # of the float outputs' span


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
        "relative_max_error": float(err.max()) / _scale(ref),
        "judged_on": _scale(ref),  # what relative errors are fractions of
    }
    if task == "classification":
        same = ref.argmax(1) == q.argmax(1)
        report["argmax_agreement"] = float(same.mean())
        decisive = _decisive(ref, tolerance)
        report["decisive_samples"] = int(decisive.sum())
        report["argmax_agreement_decisive"] = float(same[decisive].mean()) if decisive.any() else 1.0
    return report


def measured(reference: list[np.ndarray], quantized: list[np.ndarray], samples: np.ndarray, task: str,
             tolerance: float, engine: str, rejected: bool) -> dict:
    """A circuit's recorded fidelity: :func:`agreement` over the first ``len(quantized)`` of
    ``samples`` (a measurement stops early once the goal is out of reach, or on a slow model),
    the float engine it was judged against, and the digest of exactly the inputs judged (the
    registry's ``samplesDigest``)."""
    n = len(quantized)
    quality = agreement(reference[:n], quantized, task, tolerance) | {
        "reference": engine, "samples_digest": samples_digest(samples[:n])}
    if rejected and n < len(samples):
        quality["rejected_after"] = n  # the rest could not have made it acceptable
    return quality


def samples_digest(samples: np.ndarray) -> str:
    """sha256 of the samples as float32 values, row after row (little-endian): the same bytes
    whatever the array's dtype or memory layout."""
    rows = np.ascontiguousarray(np.asarray(samples, dtype="<f4").reshape(len(samples), -1))
    return hashlib.sha256(rows.tobytes()).hexdigest()


def _scale(ref: np.ndarray) -> float:
    """What an error is judged against: the float outputs' span, or for a constant output,
    which has none, its magnitude (or 1)."""
    span = float(ref.max() - ref.min())
    return span if span > 1e-9 else max(float(np.abs(ref).max()), 1.0)


def _decisive(ref: np.ndarray, tolerance: float) -> np.ndarray:
    """The samples whose decision counts: a near-tie (top-2 margin within the tolerance of the
    span) can flip under any error the tolerance allows."""
    top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.zeros((len(ref), 2))
    return (top2[:, 1] - top2[:, 0]) > tolerance * float(ref.max() - ref.min())


def out_of_reach(reference: list[np.ndarray], quantized: list[np.ndarray], task: str,
                 tolerance: float) -> bool:
    """Whether the first ``len(quantized)`` of the samples in ``reference`` already fail the
    goal, whatever the rest show: the span is the whole set's, so the error so far can only
    grow, and an argmax flip counts against the whole set's clear decisions."""
    ref = np.stack(reference)
    seen = ref[:len(quantized)]
    if float(np.abs(seen - np.stack(quantized)).max()) > tolerance * _scale(ref):
        return True
    if task != "classification":
        return False
    decisive = _decisive(ref, tolerance)
    flips = (seen.argmax(1) != np.stack(quantized).argmax(1)) & decisive[:len(quantized)]
    return int(flips.sum()) > (1 - MIN_ARGMAX_AGREEMENT) * int(decisive.sum())


def acceptable(quality: dict, tolerance: float) -> bool:
    """The fidelity goal: outputs within ``tolerance`` of their span, and argmax kept wherever
    the float model's top two outputs are more than the tolerance apart."""
    if "rejected_after" in quality:  # measured until it could no longer pass
        return False
    if quality.get("argmax_agreement_decisive", 1.0) < MIN_ARGMAX_AGREEMENT:
        return False
    return quality["relative_max_error"] <= tolerance


def goal_text(task: str, tolerance: float) -> str:
    text = f"outputs within {tolerance:.2%} of their span"
    return text + (f", argmax agreement >= {MIN_ARGMAX_AGREEMENT:.0%} where the top two differ by "
                   "more than that" if task == "classification" else "")


def quality_line(q: dict) -> str:
    line = f"max abs error {q['max_abs_error']:.4g} ({q['relative_max_error']:.2%} of the output span)"
    if "argmax_agreement" in q:
        line += (f", argmax agreement {q['argmax_agreement']:.1%} "
                 f"({q['argmax_agreement_decisive']:.1%} of {q['decisive_samples']} clear decisions)")
    return line
