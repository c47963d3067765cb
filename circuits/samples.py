"""Calibration samples: what the settings search calibrates on and judges fidelity with.

A user often brings one ``input.json``. Judging a circuit on one sample is how four models
from outside the zoo came out 9-27 % of their span off, so with fewer than ``MIN_SAMPLES``
proofmint builds more around what was given, says how, and splits them: ezkl calibrates
its ranges on one half, fidelity is measured on the other (held-out) half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer
from proofmint.errors import InvalidInputError
from proofmint.models.onnx_model import OnnxModel, check_input

MIN_SAMPLES = 64
CALIBRATION = 16  # ezkl's calibration runs the model on each: 16 bound its time
PROBE = 4  # enough to size the range-check decomposition before a full calibration
NOISE = 0.1  # of each value's magnitude, for samples built around given ones
SEED = 0


@dataclass(frozen=True)
class Samples:
    calibration: np.ndarray  # ezkl calibrates its ranges on these
    heldout: np.ndarray  # fidelity is measured on these
    probe: np.ndarray  # the first few calibration samples
    given: int
    built: str | None  # how the rest were made, when fewer than MIN_SAMPLES were given

    @property
    def all(self) -> np.ndarray:
        return np.concatenate([self.calibration, self.heldout])

    def report(self) -> dict:
        return {"given": self.given, "calibration": len(self.calibration),
                "heldout": len(self.heldout), "built": self.built}


def load_samples(path: Path, model: OnnxModel) -> np.ndarray:
    """ezkl's ``{"input_data": [[...]]}`` holding one or more inputs back to back (one list
    per graph input, in graph order, for a model with several)."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"no calibration file at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"calibration file {path} is not ezkl input JSON ({type(exc).__name__}) — expected "
            '{"input_data": [[v1, v2, ...]]} with one or more inputs back to back'
        ) from None
    samples = ezkl_layer.parse_input(doc, model.input_sizes, f"calibration file {path}", many=True)
    for i, s in enumerate(samples):
        check_input(model.input_shape, s, f"calibration sample {i} in {path}")
    return samples


def around(given: np.ndarray, n: int, seed: int = SEED) -> np.ndarray:
    """``n`` samples near the given ones: each a given sample plus Gaussian noise, sd
    ``NOISE`` x the value's magnitude (at least NOISE x the sample's mean magnitude), so
    zeros move a little and large values proportionally. Integer-valued features (class
    ids, one-hot codes, counts) stay integers within the given range."""
    rng = np.random.default_rng(seed)
    base = given[np.arange(n) % len(given)]
    floor = NOISE * np.maximum(np.abs(given).mean(axis=1, keepdims=True), 1e-3)
    sd = np.maximum(NOISE * np.abs(base), floor[np.arange(n) % len(given)])
    if len(given) > 1:
        sd = np.maximum(sd, NOISE * given.std(axis=0))
    out = base + rng.standard_normal(base.shape) * sd
    integral = np.all(given == np.round(given), axis=0)
    lo, hi = given.min(axis=0), given.max(axis=0)
    out[:, integral] = np.clip(np.round(out[:, integral]), lo[integral], hi[integral])
    return out


def prepare(given: np.ndarray | None, size: int) -> Samples:
    """Split (and, with fewer than MIN_SAMPLES, first extend) the samples."""
    if given is None:
        pool = np.random.default_rng(SEED).standard_normal((MIN_SAMPLES, size))
        built = (f"no calibration data given or found beside the model: {MIN_SAMPLES} "
                 "standard-normal samples — pass --calibration FILE with real inputs")
        count = 0
    elif len(given) < MIN_SAMPLES:
        extra = around(given, MIN_SAMPLES - len(given))
        pool = np.concatenate([given, extra])
        built = (f"{len(given)} sample{'s' if len(given) > 1 else ''} given: built {len(extra)} more "
                 f"around {'it' if len(given) == 1 else 'them'} (Gaussian noise, sd {NOISE:.0%} of "
                 "each value's magnitude; integer features kept integer) — pass --calibration FILE "
                 f"with {MIN_SAMPLES}+ real inputs for a sharper fidelity figure")
        count = len(given)
    else:
        pool, built, count = given, None, len(given)
    # Interleaved, so both sets cover what was given (and a given sample is calibrated on);
    # the calibration set is capped, the held-out set takes the rest.
    step = max(2, len(pool) // CALIBRATION)
    calib = pool[0::step][:CALIBRATION]
    rest = np.delete(pool, np.arange(0, len(pool), step)[:CALIBRATION], axis=0)
    return Samples(calib, rest, calib[:PROBE], count, built)


@dataclass
class Chunk:
    items: np.ndarray  # exactly ``batch`` inputs
    real: int  # the first ``real`` are inputs; the rest repeat the last one as padding


def batches(inputs: np.ndarray, batch: int) -> list[Chunk]:
    """Inputs in groups of ``batch``; a short last group is padded with copies of its last input
    (always in the calibrated range, unlike zeros)."""
    out = []
    for start in range(0, len(inputs), batch):
        items = inputs[start:start + batch]
        real = len(items)
        if real < batch:
            items = np.concatenate([items, np.repeat(items[-1:], batch - real, axis=0)])
        out.append(Chunk(items, real))
    return out
