"""One ``balanced`` search's spec (what the user asked, frozen), its running state (what was
tried, the clock) and the engine it calibrates and measures through.

The engine is the seam between the walk (:mod:`.walk`) and ezkl: :class:`Ezkl` calibrates,
compiles and runs real witnesses; a test gives the walk a fake one that answers with rows and
errors, so the walk's choices are checked without ezkl.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from proofmint import ezkl_layer, progress
from proofmint.encoding import Visibility
from proofmint.errors import InputOutOfRangeError, ProvingError, TimedOutError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import OnnxModel

from . import srs as srs_mod, witness as witness_mod
from .candidate import Candidate, make_candidate
from .fidelity import DEFAULT_TOLERANCE, measured, out_of_reach
from .samples import CALIBRATION, PROBE, batches

SCALES = (5, 7, 9, 11, 13)  # tried in order (and one between where cost jumps): the cheapest faithful wins
DECOMP_MARGIN_BITS = 2  # headroom over the largest decomposed value seen in calibration
MAX_DECOMP_BITS = 56  # base^legs must fit ezkl's 64-bit IntegerRep
TABLE_BITS = 8  # the small decomposition: 256-row range-check tables
DEFAULT_DECOMP_LOGROWS = 15  # the fewest logrows ezkl's default decomposition (16384, 2) allows
# The scale rebase multipliers the search lets ezkl's calibration pick from (the fewest logrows,
# then the largest multiplier). ezkl's default is 1 and 10; 2 divides half as often as 1 with
# values of twice the bits, not ten times: the zoo LeNet at scale 5 fits 16 bits at 2 (7,910
# rows, logrows 13) where 1 takes 13,798 rows (logrows 14) and 10 needs 28 bits (logrows 15).
REBASE_MULTIPLIERS = [1, 2, 10]
MIN_HELDOUT = 16
SLOW_MEASURE_S = 8.0  # the search's time bound (calibrations and witnesses), not setup
FINALISTS = 2  # timed for real at the end; a third never beat the noise margin (15 of 45 searches timed one)
MEASURE_MAX_LOGROWS = 16  # setup + one proof take seconds up to here on 2 cores
MEASURE_MIN_LOGROWS = 11  # below, a proof takes under half a second: the prediction decides
# Finalists are timed only when the prediction puts them within this factor: in 45 timed
# searches a circuit one logrow larger at the same columns (2x by prediction) never proved
# faster (22 pairs).
CLOSE_CALL = 1.5
# One proof's time varies this much on a shared machine: equal-cost candidates of the zoo
# generator (logrows 15) timed 8.05-8.93 s in one run and 7.38-8.93 s in another. A finalist
# displaces the prediction's choice only when it is faster by more than that.
TIMING_NOISE = 0.15
# A calibration's seconds here, from the rows and samples (ezkl builds the circuit once per
# rebase multiplier, then runs each sample through it): EZKL's mnist_gan, 24.7 million rows,
# took 170 s on 4 samples and 402 s on 16; the MNIST MLP's 30,000 rows take 0.7 s on 4.
CALIBRATE_FIXED_S, CALIBRATE_S_PER_ROW, CALIBRATE_S_PER_ROW_SAMPLE = 0.4, 3.8e-6, 0.8e-6
# A calibration expected to take more than this share of the budget left runs in a child
# process that the budget's end stops; quicker ones stay in process (a child costs a start).
STOPPABLE_SHARE = 0.1


@dataclass(frozen=True)
class SearchSpec:
    """What one search was asked: the model, the graph ezkl compiles, the samples and the goal."""

    model: OnnxModel  # the float reference
    graph: OnnxModel  # what ezkl compiles: the model, or its batch of copies side by side
    calibration: Path
    probe: Path  # a few of the calibration samples: finding the decomposition's size
    heldout: np.ndarray
    task: str
    visibility: Visibility
    work: Path
    tolerance: float
    batch: int
    budget: float
    rows: int = 0  # the circuit's rows at ezkl's defaults (calibrate.size)
    multipliers: tuple[int, ...] = tuple(REBASE_MULTIPLIERS)
    scales: tuple[int, ...] = SCALES  # one, where the input must be read at another circuit's output scale


class Engine(Protocol):
    """What the walk needs done to a candidate."""

    def calibrate(self, spec: SearchSpec, label: str, scale: int, layout: dict, probe: bool,
                  multipliers: list[int], stop_after: float | None) -> Candidate:
        """Calibrate and compile one choice; ``stop_after`` seconds: run where that can stop it.
        Raises ProvingError when ezkl can't, TimedOutError when stopped."""

    def measure(self, spec: SearchSpec, c: Candidate) -> dict:
        """The candidate's agreement with the float model on the held-out samples."""

    def time_prove(self, spec: SearchSpec, c: Candidate) -> float:
        """Seconds one real proof takes (its keys kept with the candidate)."""


def measure(c: Candidate, model: OnnxModel, samples: np.ndarray, task: str, work: Path,
            batch: int = 1, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Agreement of the circuit with the float model over ``samples`` (via real witnesses; a
    batch circuit runs them ``batch`` at a time, the last batch padded and its padding ignored)."""
    scales = c.settings["model_output_scales"]
    wdir = work / f"{c.label}-witness"
    wdir.mkdir(exist_ok=True)
    ref = [np.concatenate([o.ravel() for o in model.run(x)]) for x in samples]
    quant, rejected = [], False
    name = f"measure {c.label} on {len(samples)} held-out samples"
    started = time.monotonic()
    with progress.step(name, total=len(samples)):
        for i, chunk in enumerate(batches(samples, batch)):
            _, w = witness_mod.generate(c.compiled_path, chunk.items, wdir, stem=f"w{i}",
                                        sizes=model.input_sizes)
            try:
                witness_mod.check_lookups(w, c.settings["run_args"]["lookup_range"], "a held-out sample")
            except InputOutOfRangeError as exc:  # this candidate's tables don't hold the sample
                raise ProvingError(str(exc)) from None
            quant.extend(witness_mod.split_items(ezkl_layer.decode_outputs(w, scales), batch)[:chunk.real])
            progress.advance(name, chunk.real)
            rejected = out_of_reach(ref, quant, task, tolerance)
            if rejected or (len(quant) >= MIN_HELDOUT and time.monotonic() - started > SLOW_MEASURE_S):
                break  # a slow model is judged on MIN_HELDOUT samples, not fewer
    shutil.rmtree(wdir, ignore_errors=True)
    c.quality = measured(ref, quant, samples, task, tolerance, model.reference, rejected)
    return c.quality


class Ezkl:
    """The engine that runs ezkl."""

    def calibrate(self, spec, label, scale, layout, probe, multipliers, stop_after):
        args = (label, spec.graph, spec.probe if probe else spec.calibration, spec.visibility,
                "resources", [scale], spec.work, spec.batch, layout, multipliers)
        if stop_after is not None:
            return run_in_child(make_candidate, *args, timeout=stop_after, what=f"calibration {label}")
        return make_candidate(*args)

    def measure(self, spec, c):
        return measure(c, spec.model, spec.heldout, spec.task, spec.work, spec.batch, spec.tolerance)

    def time_prove(self, spec, c):
        """Seconds one real proof of candidate ``c`` takes here (setup not counted): the check on
        the cost model. The keys stay with the candidate: setup is deterministic, so the chosen
        one's serve the package when it uses this same development SRS."""
        srs = srs_mod.development(c.logrows)
        d = spec.work / f"{c.label}-timing"
        d.mkdir(exist_ok=True)
        ezkl_layer.setup(c.compiled_path, d / "vk.key", d / "pk.key", Path(srs.path))
        c.keys, c.keys_srs = d, srs.path
        x = batches(spec.heldout[:spec.batch], spec.batch)[0].items
        wpath, _ = witness_mod.generate(c.compiled_path, x, d, vk=d / "vk.key", srs=Path(srs.path),
                                        sizes=spec.model.input_sizes)
        started = time.perf_counter()
        ezkl_layer.prove(wpath, c.compiled_path, d / "pk.key", d / "proof.json", Path(srs.path))
        return round(time.perf_counter() - started, 3)


@dataclass
class Search:
    """The state of one ``balanced`` search: what was tried, and the clock."""

    spec: SearchSpec
    engine: Engine = field(default_factory=Ezkl)
    started: float = field(default_factory=time.monotonic)
    tried: list[Candidate] = field(default_factory=list)
    probes: list[Candidate] = field(default_factory=list)  # decompositions sized on a few samples
    failed: list[dict] = field(default_factory=list)
    slowest: float = 0.0  # the longest calibration so far, seconds
    measured: list[str] = field(default_factory=list)  # labels, in the order measured
    bits_move_rows: bool | None = None  # whether a wider decomposition changed the rows, once known
    out_of_time: bool = False  # a calibration was stopped, or not started, for the budget

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def over_budget(self) -> bool:
        return self.elapsed > self.spec.budget

    @property
    def slow(self) -> bool:
        """Calibrations this slow (a tree ensemble: ~75 s on 32 samples) skip optional trials."""
        return self.slowest > 10.0

    def expected_s(self, probe: bool) -> float:
        """What one calibration should take: predicted from the rows, or the slowest yet."""
        n = math.ceil((PROBE if probe else CALIBRATION) / self.spec.batch)
        predicted = CALIBRATE_FIXED_S + self.spec.rows * (CALIBRATE_S_PER_ROW + n * CALIBRATE_S_PER_ROW_SAMPLE)
        return max(predicted, self.slowest)

    def measure(self, c: Candidate) -> dict:
        self.measured.append(c.label)
        c.quality = self.engine.measure(self.spec, c)
        return c.quality

    def share_quality(self, measured: Candidate) -> None:
        """A measurement holds for every candidate with the same values, whatever the layout."""
        for other in self.tried:
            if other.quality is None and other.same_values(measured):
                other.quality = measured.quality

    def attempt(self, label: str, scale: int, layout: dict, probe: bool = False,
                multipliers: list[int] | None = None) -> Candidate | None:
        """One candidate calibrated, or None. The budget bounds even a single calibration: one
        that could take a real share of what is left runs in a child stopped at its end
        (EZKL's mnist_gan took 170 s for a single one)."""
        started, left = time.monotonic(), self.spec.budget - self.elapsed
        if left <= 0:
            self.out_of_time = True
            return None
        try:
            with progress.step(f"balanced: calibrate {label}{' (probe)' if probe else ''}"):
                stoppable = self.expected_s(probe) > STOPPABLE_SHARE * left
                cand = self.engine.calibrate(self.spec, label, scale, layout, probe,
                                             list(multipliers or self.spec.multipliers), left if stoppable else None)
        except TimedOutError:
            self.out_of_time = True
            self.failed.append({"label": label, "why": f"stopped after {left:.1f} s, the budget left"})
            return None
        except ProvingError as exc:  # a setting ezkl can't calibrate is simply not a candidate
            self.failed.append({"label": label, "why": str(exc).splitlines()[0][:200]})
            return None
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)
        (self.probes if probe else self.tried).append(cand)
        return cand
