"""Calibration samples: what the settings search calibrates on and judges fidelity with.

A user often brings one ``input.json``. Judging a circuit on one sample is how four models
from outside the zoo came out 9-27 % of their span off, and calibrating on points near it is
how a circuit came out too narrow for the very next input (a Gemm-Tanh-Gemm graph over
[-1, 1]: 10 % noise around one input made lookup tables of [-1560, 1468], and uniform draws
from [-1, 1] reached 2379). So with fewer than ``MIN_SAMPLES`` proofmint builds more: half
around what was given (the data's own shape), half drawn uniformly from the **domain** the
given values suggest (:func:`domain`: the range each feature could take), keeps only those the
float model is defined on, and splits them: ezkl calibrates its ranges on one part, fidelity
is measured on the rest (held out) and on every given sample, which is judged first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proofmint import inputs
from proofmint.errors import InvalidModelError
from proofmint.models.onnx_model import OnnxModel, index_tables

MIN_SAMPLES = 64
CALIBRATION = 16  # ezkl's calibration runs the model on each: 16 bound its time
PROBE = 4  # enough to size the range-check decomposition before a full calibration
NOISE = 0.1  # of each value's magnitude, for samples built around given ones
HEADROOM = 0.25  # of the given values' span, on each side, where no standard range holds them
# The ranges inputs are commonly scaled to, tried in order: the first that holds every given
# value is the domain (pixels in [0, 1] or [0, 255], features in [-1, 1], z-scores in [-3, 3]).
STANDARD_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-3.0, 3.0))
RECIPE = "around+domain/v2"  # part of the compile cache key: a new recipe is a new compile
SEED = 0


@dataclass(frozen=True)
class Domain:
    """Where the circuit is calibrated to take inputs: per feature, ``low`` to ``high``."""

    low: np.ndarray
    high: np.ndarray
    integral: np.ndarray  # features that take whole numbers (class ids, token ids, counts)
    why: str

    def text(self) -> str:
        lo, hi = float(self.low.min()), float(self.high.max())
        return f"[{lo:g}, {hi:g}] ({self.why})"


@dataclass(frozen=True)
class Samples:
    calibration: np.ndarray  # ezkl calibrates its ranges on these
    heldout: np.ndarray  # fidelity is measured on these: the given ones first
    probe: np.ndarray  # the first few calibration samples
    given: int
    built: str | None  # how the rest were made, when fewer than MIN_SAMPLES were given
    domain: Domain | None = None  # where built samples were drawn (None: all given)

    @property
    def all(self) -> np.ndarray:
        return np.concatenate([self.calibration, self.heldout])

    @property
    def accepted(self) -> list[float]:
        """The input range the circuit is calibrated for: what compile says it accepts."""
        every = self.all
        return [float(every.min()), float(every.max())]

    def report(self) -> dict:
        return {"given": self.given, "calibration": len(self.calibration),
                "heldout": len(self.heldout), "built": self.built, "accepted_range": self.accepted,
                "domain": self.domain.text() if self.domain else None}


def load_samples(path: Path, model: OnnxModel) -> np.ndarray:
    """Every sample in a calibration file, read as ``prove`` reads inputs (:mod:`proofmint.inputs`):
    ezkl's ``{"input_data": [[...]]}`` holding one or more inputs back to back (one list per graph
    input, in graph order, for a model with several), JSONL or ``.npy``."""
    samples = [s for where, doc in inputs.documents(path, model.input_size, what="calibration file")
               for s in inputs.values(doc, model.input_sizes, f"calibration file {where}", many=True)]
    for i, s in enumerate(samples):
        inputs.check_input(model.input_shape, s, f"calibration sample {i} in {path}")
    return np.stack(samples)


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


def domain(given: np.ndarray, model: OnnxModel) -> Domain:
    """The range each graph input could take, from the given values and the graph.

    An input that indexes a table (an embedding's Gather) takes any row: 0 .. rows - 1. An input
    of whole numbers (pixel intensities, counts) takes the whole numbers from its smallest to its
    largest given value. Any other input takes the first standard range
    (:data:`STANDARD_RANGES`) that holds every given value, else the given span widened by
    ``HEADROOM`` on each side. One range per input, not per feature: a few samples say little
    about a feature alone (a digit's background pixels are all 0 in one image, not in the next)."""
    low, high = np.empty(model.input_size), np.empty(model.input_size)
    integral = np.zeros(model.input_size, dtype=bool)
    whys, start = [], 0
    for name, size, rows in zip(model.input_names, model.input_sizes, index_tables(model)):
        part = slice(start, start + size)
        values = given[:, part]
        lo, hi = float(values.min()), float(values.max())
        if rows:
            (a, b), integral[part], why = (0, rows - 1), True, f"indices into a table of {rows} rows"
        elif np.all(values == np.round(values)):
            (a, b), integral[part], why = (lo, hi), True, "whole numbers within the given ones"
        else:
            a, b = next(((a, b) for a, b in STANDARD_RANGES if a <= lo and hi <= b), (None, None))
            why = f"the given values lie in [{a:g}, {b:g}]" if a is not None else \
                f"the given values' span, {HEADROOM:.0%} wider each side"
            if a is None:
                pad = HEADROOM * max(hi - lo, abs(hi), abs(lo), 1e-6)
                a, b = lo - pad, hi + pad
        low[part], high[part] = a, b
        whys.append(why if len(model.input_names) == 1 else f"{name}: {why}")
        start += size
    return Domain(low, high, integral, "; ".join(whys))


def uniform(d: Domain, n: int, seed: int = SEED + 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = d.low + rng.random((n, d.low.size)) * (d.high - d.low)
    out[:, d.integral] = rng.integers(d.low[d.integral].astype(np.int64),
                                      d.high[d.integral].astype(np.int64) + 1,
                                      (n, int(d.integral.sum())))
    return out


def defined(model: OnnxModel, x: np.ndarray) -> bool:
    """Whether the float model gives finite outputs for ``x``."""
    return all(np.isfinite(o).all() for o in model.run(x))


def check_defined(model: OnnxModel, given: np.ndarray, where: str) -> None:
    """Refuse given samples the float model itself isn't defined on: no circuit can be judged
    against a NaN."""
    for i, x in enumerate(given):
        if not defined(model, x):
            raise InvalidModelError(
                f"the float model gives NaN or infinity for {where}"
                + (f" sample {i}" if len(given) > 1 else "")
                + " (a Sqrt or Log of a negative value, a division by zero?) — the model isn't "
                "defined there: give inputs it is defined on, or fix the model")


def prepare(given: np.ndarray | None, model: OnnxModel, judged: np.ndarray | None = None) -> Samples:
    """Split (and, with fewer than MIN_SAMPLES, first extend) the samples; ``judged`` (the
    folder's input.json, when calibration came from elsewhere) is measured first too."""
    size = model.input_size
    dom = None
    if given is None:
        pool = np.random.default_rng(SEED).standard_normal((MIN_SAMPLES, size))
        built = (f"no calibration data given or found beside the model: {MIN_SAMPLES} "
                 "standard-normal samples — pass --calibration FILE with real inputs")
        count = 0
    elif len(given) < MIN_SAMPLES:
        dom = domain(given, model)
        want = MIN_SAMPLES - len(given)
        near = np.clip(around(given, want // 2), dom.low, dom.high)  # the domain is what compile states
        wide = uniform(dom, want - want // 2)
        keep_near = [x for x in near if defined(model, x)]
        keep_wide = [x for x in wide if defined(model, x)]
        dropped = len(near) + len(wide) - len(keep_near) - len(keep_wide)
        pool = np.concatenate([given, *[np.stack(k) for k in (keep_near, keep_wide) if k]])
        built = (f"{len(given)} sample{'s' if len(given) > 1 else ''} given: built {len(pool) - len(given)} "
                 f"more, {len(keep_near)} around {'it' if len(given) == 1 else 'them'} (Gaussian noise, sd "
                 f"{NOISE:.0%} of each value's magnitude) and {len(keep_wide)} drawn from {dom.text()}"
                 + (f"; {dropped} left out where the float model gives NaN or infinity" if dropped else "")
                 + f" — pass --calibration FILE with {MIN_SAMPLES}+ real inputs for a sharper figure")
        count = len(given)
    else:
        pool, built, count = given, None, len(given)
    # The calibration set: a few given samples, then those that drive the layers furthest
    # (capped: ezkl's calibration runs each one). The held-out set takes the rest; what the user
    # gave is judged first, so a few given samples are calibrated on and judged too.
    few = given is not None and len(given) < MIN_SAMPLES
    in_calib = covering(model, pool, count if few else 0)
    first = [a for a in (judged, given if few else None) if a is not None]
    rest = np.delete(pool, np.union1d(in_calib, np.arange(count if few else 0)), axis=0)
    heldout = np.concatenate(first + [rest])
    return Samples(pool[in_calib], heldout, pool[in_calib][:PROBE], count, built, dom)


def covering(model: OnnxModel, pool: np.ndarray, given: int) -> np.ndarray:
    """Indices of up to ``CALIBRATION`` samples of ``pool``: its first ``given`` (what the user
    gave), then, greedily, the one that widens the covered range of the graph's tensors most
    (each tensor's widening as a share of its range over the pool), then evenly spread ones.

    ezkl sizes its lookup tables and range checks from the calibration samples alone (with a
    2x margin): samples taken at random left a held-out input of a Tanh layer at -806 against
    a table ending at -746. Calibrated on the extremes, every sample of the pool fits."""
    chosen = list(range(min(given, CALIBRATION)))
    ext = model.extremes(pool)  # samples x tensors x (min, max)
    lo, hi = ext[:, :, 0], ext[:, :, 1]
    span = np.maximum(hi.max(0) - lo.min(0), 1e-12)
    cur_lo = lo[chosen].min(0) if chosen else np.full(span.shape, np.inf)
    cur_hi = hi[chosen].max(0) if chosen else np.full(span.shape, -np.inf)
    while len(chosen) < min(CALIBRATION, len(pool)):
        widen = (np.clip(cur_lo - lo, 0, None) + np.clip(hi - cur_hi, 0, None)) / span
        widen = np.where(np.isfinite(widen), widen, 1.0).sum(1)
        widen[chosen] = -1
        best = int(widen.argmax())
        if widen[best] <= 0:
            break
        chosen.append(best)
        cur_lo, cur_hi = np.minimum(cur_lo, lo[best]), np.maximum(cur_hi, hi[best])
    spread = [i for i in range(0, len(pool), max(1, len(pool) // CALIBRATION)) if i not in chosen]
    chosen += spread[:max(0, min(CALIBRATION, len(pool)) - len(chosen))]
    return np.array(chosen)


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
