"""Choosing circuit settings: proofmint's ``balanced`` (fidelity first, then speed), and ezkl's
own ``resources`` and ``accuracy``.

``balanced`` promises that the circuit's decoded outputs are the float model's within a
tolerance (1 % of the float outputs' span by default, max over held-out samples) and, for a
classifier, that argmax agrees on >= 99 % of them; among circuits that keep that promise it
takes the one predicted to prove fastest. ezkl's calibration never checks the first part:
four small models from outside the zoo came out 9-27 % of their span off at ezkl's choices.

What sets proving cost, and what the search therefore covers:

- the fixed-point scale (bits after the point): fidelity rises with it, and so do the ranges
  every range check and lookup table must cover. The search goes up the scales and stops at
  the first that meets the fidelity goal;
- the range-check decomposition (``decomp_base`` ^ ``decomp_legs`` must cover every value
  that is decomposed). ezkl's default (16384, 2) puts a 2^14-row table in every circuit and
  sets logrows 15 for any small model; sized to the values the model really produces
  (found by calibrating, plus a 2-bit margin), the wine MLP goes from logrows 15 to 9 and
  proves 30x faster with the same outputs;
- the scale rebase multiplier ezkl's calibration picks within that decomposition (of 1, 2 and
  10: how often products are divided back to the input scale, each division a range-checked
  decomposition): the zoo LeNet is 13,798 rows at 1 and 7,910 at 2, a logrow fewer;
- the layout: Freivalds checks (:func:`tune_layout`), and why wider layouts are not tried.

Proving time follows 2^logrows times the columns, so a candidate's cost is predicted from its
settings (fewest logrows, then fewest rows) without proving anything. Each candidate costs a
calibration; fidelity is measured only at scales that could be chosen (a decomposition or
layout moves no value unless it changes the rebase multiplier), on held-out samples the
calibration never saw, from real witnesses, and
a measurement stops at the first sample that puts the goal out of reach.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer, progress
from proofmint.encoding import Visibility
from proofmint.errors import (InputOutOfRangeError, InvalidModelError, ProofmintError, ProvingError,
                              TimedOutError)
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import OnnxModel

from . import srs as srs_mod, witness as witness_mod
from .fidelity import DEFAULT_TOLERANCE, acceptable, agreement, goal_text, out_of_reach, quality_line
from .samples import CALIBRATION, PROBE, batches

TARGETS = ("balanced", "resources", "accuracy")
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
DEFAULT_BUDGET_S = 600.0
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
# The proving key per row of 2^logrows at 2 inner columns: 4,226-4,240 bytes on the 15 EZKL
# examples proofmint proves here (logrows 7-20); more tables and columns only add to it.
PK_BYTES_PER_ROW = 4096
# A calibration's seconds here, from the rows and samples (ezkl builds the circuit once per
# rebase multiplier, then runs each sample through it): EZKL's mnist_gan, 24.7 million rows,
# took 170 s on 4 samples and 402 s on 16; the MNIST MLP's 30,000 rows take 0.7 s on 4.
CALIBRATE_FIXED_S, CALIBRATE_S_PER_ROW, CALIBRATE_S_PER_ROW_SAMPLE = 0.4, 3.8e-6, 0.8e-6
# A calibration expected to take more than this share of the budget left runs in a child
# process that the budget's end stops; quicker ones stay in process (a child costs a start).
STOPPABLE_SHARE = 0.1


@dataclass
class Candidate:
    label: str
    settings: dict
    settings_path: Path
    compiled_path: Path
    quality: dict | None = None
    overrides: dict = field(default_factory=dict)
    keys: Path | None = None  # vk.key + pk.key from timing a proof, and the SRS they were made with
    keys_srs: str | None = None

    @property
    def logrows(self) -> int:
        return self.settings["run_args"]["logrows"]

    @property
    def scale(self) -> int:
        return self.settings["run_args"]["input_scale"]

    @property
    def rebase(self) -> int:
        """ezkl's scale_rebase_multiplier: how far a scale may grow before it is divided back.
        It moves values, so candidates share a fidelity measurement only when it matches."""
        return self.settings["run_args"].get("scale_rebase_multiplier", 1)

    def same_values(self, other: "Candidate") -> bool:
        """Whether ``other`` computes the same fixed-point values (only layout or range checks
        differ), so one fidelity measurement holds for both."""
        ra, rb = self.settings["run_args"], other.settings["run_args"]
        return (self.scale, ra["param_scale"], self.rebase) == (other.scale, rb["param_scale"], other.rebase)

    @property
    def cost(self) -> tuple[int, int]:
        """Predicted proving cost: 2^logrows x columns dominates, rows break ties.

        ezkl repeats every lookup and range-check argument in each inner column, so an inner
        column costs one advice column plus one argument per kind of table. That is why twice
        the inner columns at one logrow fewer proves in about the same time (17 such pairs
        timed on 2 cores: 0.78-1.54x, median 1.05x), not in half. Tables count too: one
        longer than 2^logrows is split over several columns, which is how a circuit one logrow
        smaller can prove slower (EZKL's 2l_relu_sigmoid_conv at logrows 14 vs 15)."""
        n = 2 ** self.logrows
        tables = [hi - lo + 1 for lo, hi in self.settings.get("required_range_checks", [])]
        tables += [self.lookup_rows] * len(self.settings.get("required_lookups", []))
        columns = (self.layout["num_inner_cols"] * (1 + len(tables)) + 2
                   + sum(math.ceil(t / n) for t in tables))
        return n * columns, self.settings["num_rows"]

    @property
    def lookup_rows(self) -> int:
        """Rows of each lookup table (0 without lookups): they span ``lookup_range``."""
        lo, hi = self.settings["run_args"]["lookup_range"]
        return hi - lo + 1 if self.settings.get("required_lookups") else 0

    @property
    def layout(self) -> dict:
        ra = self.settings["run_args"]
        return {"num_inner_cols": ra["num_inner_cols"],
                "disable_freivalds": bool(ra.get("disable_freivalds", False)),
                "decomp_base": ra["decomp_base"], "decomp_legs": ra["decomp_legs"]}

    @property
    def freivalds_columns(self) -> int:
        return self.settings.get("einsum_params", {}).get("total_einsum_col_size", 0)

    def summary(self) -> dict:
        return {"label": self.label, "logrows": self.logrows, "num_rows": self.settings["num_rows"],
                "predicted_cost": self.cost[0],
                "input_scale": self.scale, "param_scale": self.settings["run_args"]["param_scale"],
                "scale_rebase_multiplier": self.rebase,
                "lookup_range": self.settings["run_args"]["lookup_range"],
                "layout": self.layout | {"freivalds_columns": self.freivalds_columns},
                "quality": self.quality}


def run_args(visibility: Visibility, model: OnnxModel, batch: int = 1, layout: dict | None = None):
    variables = [(model.batch_axis, batch)] if model.batch_axis else None
    return ezkl_layer.run_args(**visibility.run_args(), variables=variables, layout=layout)


def make_candidate(label: str, model: OnnxModel, calibration: Path, visibility: Visibility,
                   target: str, scales: list[int] | None, work: Path, batch: int = 1,
                   layout: dict | None = None, multipliers: list[int] | None = None) -> Candidate:
    """gen_settings + calibrate_settings + compile_circuit for one choice of scales and layout.
    ``model`` is the graph ezkl compiles (for a fixed-batch model batched side by side, the
    N-copy graph); ``multipliers`` default to ezkl's own."""
    d = work / label
    d.mkdir(parents=True, exist_ok=True)
    settings_path, compiled = d / "settings.json", d / "model.compiled"
    ezkl_layer.gen_settings(model.path, settings_path, run_args(visibility, model, batch, layout))
    ezkl_layer.calibrate_settings(calibration, model.path, settings_path, target, scales, multipliers)
    ezkl_layer.compile_circuit(model.path, compiled, settings_path)
    return Candidate(label, json.loads(settings_path.read_text()), settings_path, compiled,
                     overrides=dict(layout or {}))


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
    ref = ref[:len(quant)]
    shutil.rmtree(wdir, ignore_errors=True)
    c.quality = agreement(ref, quant, task, tolerance) | {"reference": model.reference}
    if rejected and len(quant) < len(samples):
        c.quality["rejected_after"] = len(quant)  # the rest could not have made it acceptable
    return c.quality


@dataclass
class Search:
    """The state of one ``balanced`` search: what was tried, and the clock."""

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
    started: float = field(default_factory=time.monotonic)
    tried: list[Candidate] = field(default_factory=list)
    probes: list[Candidate] = field(default_factory=list)  # decompositions sized on a few samples
    failed: list[dict] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    slowest: float = 0.0  # the longest calibration so far, seconds

    @property
    def slow(self) -> bool:
        """Calibrations this slow (a tree ensemble: ~75 s on 32 samples) skip optional trials."""
        return self.slowest > 10.0

    measured: list[str] = field(default_factory=list)  # labels, in the order measured
    bits_move_rows: bool | None = None  # whether a wider decomposition changed the rows, once known
    rows: int = 0  # the circuit's rows at ezkl's defaults (:func:`check_size`)
    multipliers: list[int] = field(default_factory=lambda: list(REBASE_MULTIPLIERS))
    out_of_time: bool = False  # a calibration was stopped, or not started, for the budget

    def expected_s(self, probe: bool) -> float:
        """What one calibration should take: predicted from the rows, or the slowest yet."""
        n = math.ceil((PROBE if probe else CALIBRATION) / self.batch)
        predicted = CALIBRATE_FIXED_S + self.rows * (CALIBRATE_S_PER_ROW + n * CALIBRATE_S_PER_ROW_SAMPLE)
        return max(predicted, self.slowest)

    def measure(self, c: Candidate) -> dict:
        self.measured.append(c.label)
        return measure(c, self.model, self.heldout, self.task, self.work, self.batch, self.tolerance)

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
        started, left = time.monotonic(), self.budget - self.elapsed
        if left <= 0:
            self.out_of_time = True
            return None
        args = (label, self.graph, self.probe if probe else self.calibration, self.visibility,
                "resources", [scale], self.work, self.batch, layout, multipliers or self.multipliers)
        try:
            with progress.step(f"balanced: calibrate {label}{' (probe)' if probe else ''}"):
                if self.expected_s(probe) > STOPPABLE_SHARE * left:
                    cand = run_in_child(make_candidate, *args, timeout=left, what=f"calibration {label}")
                else:
                    cand = make_candidate(*args)
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


def decomposition(bits: int, legs: int) -> dict:
    legs = max(1, legs)
    return {"decomp_base": 2 ** math.ceil(bits / legs), "decomp_legs": legs}


Hint = tuple[int, int, int]  # a fitted scale, its bits and the rebase multiplier they fit


def walk_key(probe: Candidate) -> tuple[int, int, int]:
    """What a wider decomposition must lower for the walk to take it: the logrows its rows
    alone need (256-row tables can get there), then its own logrows (two legs), then its rows.
    Fewer rows alone is not enough: EZKL's 1l_gelu_tanh_appx at scale 5 takes 407 rows at 12
    bits (logrows 9) and 339 at 20 (multiplier 2, but a 2^10-row table: logrows 11)."""
    rows = probe.settings["num_rows"]
    return rows.bit_length(), probe.logrows, rows


def fit_scale(search: Search, scale: int, hint: Hint | None) -> tuple[Candidate | None, Hint | None]:
    """The cheapest range-check decomposition that calibrates at ``scale``, probed on a few
    samples on a 4-bit grid from a lower scale's figure (``hint``; the values grow about 2 bits
    a scale), then calibrated with a margin on every sample, as 256-row tables or as two legs,
    whichever the settings predict cheaper. Returns the candidate and the hint for the next
    scale.

    The fewest bits is not always the cheapest: of the scale rebase multipliers offered
    (:func:`useful_multipliers`), ezkl's calibration picks the one whose values fit the
    decomposition at the fewest logrows, the largest among equals, and a larger one divides
    less often. The zoo LeNet at scale 5: 12 bits fit only multiplier 1 (13,798 rows,
    logrows 14), 16 bits multiplier 2 (7,910 rows, logrows 13), 28 bits multiplier 10 (6,944
    rows, but a 2^14-row table). So at the first scale the walk follows the rows: down while
    they don't grow, up while they take logrows off (:func:`walk_key`; looking one step
    further, since the next multiplier can need 8 more bits), and no further once the
    multiplier is the largest the search offers. Later scales start from
    the hint's bits and walk up only until they fit the hint's multiplier again: a larger one
    needs more bits the finer the scale (EZKL's gru, lenet_5: one row count at every width,
    walk nowhere). The full calibrations leave out the multipliers above the probe's; ezkl may
    still pick a smaller one, whose values fit fewer legs (EZKL-exported LogSoftmax at scale 11:
    multiplier 10 with 6 legs needs logrows 22 for its lookup tables, 1 only 15)."""
    bits = hint[1] + 2 * (scale - hint[0]) if hint else 2 * scale + 2

    def probe(b: int) -> Candidate | None:
        return search.attempt(f"s{scale}-b{b}", scale, decomposition(b, 2), probe=True)

    fitted = probe(bits)
    while fitted is None and bits + 4 <= MAX_DECOMP_BITS - DECOMP_MARGIN_BITS and search.elapsed < search.budget:
        bits += 4
        fitted = probe(bits)
    if fitted is None:
        return None, None
    target = search.multipliers[-1] if hint is None else hint[2]
    if not search.slow and search.bits_move_rows is not False:
        walked_up, step = False, 4
        while (fitted.rebase < target and bits + step <= MAX_DECOMP_BITS - DECOMP_MARGIN_BITS
               and step <= 8):
            wider = probe(bits + step)
            if wider is not None and walk_key(wider) < walk_key(fitted):
                bits, fitted, walked_up, step = bits + step, wider, True, 4
            else:  # the next multiplier can need 8 bits more: look one step further
                step += 4
        if hint is None and not walked_up:  # the first scale: walk down while nothing grows
            while bits - 4 >= 8:
                narrower = probe(bits - 4)
                if narrower is None or narrower.settings["num_rows"] > fitted.settings["num_rows"]:
                    break
                bits, fitted = bits - 4, narrower
        if search.bits_move_rows is None:  # the first scale's walk says whether walking pays
            search.bits_move_rows = len({p.settings["num_rows"] for p in search.probes
                                         if p.scale == scale}) > 1
    found = (scale, bits, fitted.rebase)
    # two legs are rows-bound where their 2^(final/2)-row table fits the probe's rows' logrows:
    # 256-row tables (more legs, more rows) can't be cheaper there
    rows_logrows = fitted.settings["num_rows"].bit_length()
    # no multiplier above the probe's: none fitted its bits (and each costs a circuit)
    multipliers = [m for m in search.multipliers if m <= fitted.rebase]
    for final in (bits + DECOMP_MARGIN_BITS, bits + DECOMP_MARGIN_BITS + 4):  # all samples may need more
        def legs(n: int) -> Candidate | None:
            return search.attempt(f"s{scale}-b{final}-legs{n}", scale, decomposition(final, n),
                                  multipliers=multipliers)

        rows_bound = math.ceil(final / 2) + 1 <= rows_logrows
        small = (legs(math.ceil(final / TABLE_BITS))
                 if not search.slow and final > 2 * TABLE_BITS and not rows_bound else None)
        # two legs need a 2^(final/2)-row table and one row more: where that alone outgrows the
        # small tables' circuit, it can only cost more (the MNIST MLP at scale 13: logrows 24)
        two = legs(2) if small is None or math.ceil(final / 2) < small.logrows else None
        options = [o for o in (small, two) if o is not None]
        if options:
            return min(options, key=lambda c: c.cost), found
    return None, found


def first_faithful(search: Search, level: list[Candidate]) -> Candidate | None:
    """The cheapest candidate of ``level`` (scales fitted at about one predicted cost) that
    keeps the model's outputs, the finest among equals: where the rows don't depend on the
    scale (EZKL's 4l_relu_conv_fc: 23,396 rows at scales 5-13) the finest is the same proof for
    a smaller error (0.93 % of the span at scale 9, 0.05 % at 13)."""
    for cand in sorted(level, key=lambda c: (c.cost[0], -c.scale)):
        if cand.quality is None:  # not yet measured, itself or at the same values
            if cand.label in search.measured:
                continue  # measured before, and a held-out sample failed it
            try:
                search.measure(cand)
            except ProvingError as exc:  # a held-out sample this circuit can't take
                search.failed.append({"label": cand.label, "why": str(exc)[:200]})
                continue
            search.share_quality(cand)
        if acceptable(cand.quality, search.tolerance):
            return cand
    return None


def between(search: Search, failed: list[Candidate], costlier: Candidate,
            hint: Hint | None) -> Candidate | None:
    """The scale just below ``costlier``'s, where the level under it missed the goal: the step
    from one level to the next can be a whole logrow or two (the zoo generator: scale 7 at
    logrows 13 is 1.24 % of its span off, scale 9 needs logrows 15), and the scale between can
    keep the outputs for less."""
    mid = costlier.scale - 1
    if mid <= max(c.scale for c in failed) or search.elapsed > search.budget:
        return None
    cand, _ = fit_scale(search, mid, hint)
    if cand is None or cand.cost[0] >= costlier.cost[0]:
        return None
    return first_faithful(search, [cand])


def balanced(search: Search) -> Candidate:
    """Up the scales, fitting each one's cheapest decomposition; the scales fitted at one
    predicted cost form a level, measured (finest first) once the next scale costs more, so
    the first level that keeps the model's outputs gives the circuit, or else the scale
    between it and the next (:func:`between`). A scale is measured only where it could be
    chosen: one that costs no more than a finer one never is. So when two scales cost the
    same, the finest is fitted next, unless its lookup tables will outgrow the circuit (they
    double with each scale: EZKL's gru, 377 rows at scale 7, 23,877 at 13). Where it costs the
    same too (the MNIST MLP: logrows 15, 31,898 rows or fewer at every scale) and keeps the
    outputs, it is the level's choice and the scales between are never fitted. A slow model
    (minutes per calibration) measures each scale as it comes rather than fit one more."""
    hint, level, ahead = None, [], {}
    finest = SCALES[-1]
    with progress.step("balanced: search scales", total=len(SCALES)):
        for scale in SCALES:
            before = hint
            cand, hint = ahead.pop(scale) if scale in ahead else fit_scale(search, scale, hint)
            progress.advance("balanced: search scales")
            if cand is not None and level and cand.cost[0] > level[0].cost[0]:
                chosen = first_faithful(search, level) or between(search, level, cand, before)
                if chosen is not None:
                    return chosen
                level = []
            if cand is not None:
                level.append(cand)
                if search.slow:
                    chosen = first_faithful(search, level)
                    if chosen is not None:
                        return chosen
                    level = []
                elif (len(level) >= 2 and level[-1].cost[0] == level[0].cost[0] and scale < SCALES[-3]
                      and cand.lookup_rows * 2 ** (finest - scale) < 2 ** cand.logrows
                      and search.elapsed < search.budget):
                    ahead[finest] = fit_scale(search, finest, hint)
                    top = ahead[finest][0]
                    if top is not None and top.cost[0] == level[0].cost[0]:
                        chosen = first_faithful(search, [top])
                        if chosen is not None:
                            return chosen
            if search.elapsed > search.budget:
                break
        chosen = first_faithful(search, level)
        if chosen is not None:
            return chosen
    measured = [c for c in search.tried if c.quality is not None]
    best = min((c.quality["relative_max_error"] for c in measured), default=None)
    more = f"--budget {max(4 * search.budget, 600):g}"  # what to pass when the budget ran out
    if best is None and search.out_of_time and not search.tried:
        why = f"; last: {search.failed[-1]['why']}" if search.failed else ""
        raise InvalidModelError(
            f"the settings search for {search.model.path.name} ({search.rows:,} rows) spent its "
            f"{search.budget:g} s budget before any circuit was calibrated ({len(search.failed)} "
            f"settings stopped or failed{why}) — pass a larger budget ({more}), or shrink the model")
    if best is None:
        why = search.failed[-1]["why"] if search.failed else "no setting calibrated"
        raise InvalidModelError(
            f"ezkl could not calibrate {search.model.path.name} at any scale in {list(SCALES)} "
            f"({len(search.failed)} settings tried; last: {why}) — check the model's ops and "
            "calibration data, or try --target resources")
    worst_agree = [c.quality.get("argmax_agreement") for c in measured]
    raise InvalidModelError(
        f"no circuit kept {search.model.path.name}'s outputs within {search.tolerance:.2%} of "
        f"their span (best: {best:.2%}"
        + (f", argmax agreement {max(a for a in worst_agree if a is not None):.0%}"
           if any(a is not None for a in worst_agree) else "")
        + f"; scales {sorted({c.scale for c in measured})} tried in {search.elapsed:.0f} s) — "
        + (f"the {search.budget:g} s budget ran out before the finer scales: pass {more} to try "
           "them, or " if search.out_of_time else "")
        + f"pass --tolerance {max(2 * best, search.tolerance * 2):.2g} to accept that error, or "
        "calibration data closer to the inputs you will prove")


def circuit_rows(graph: OnnxModel, visibility: Visibility, folder: Path, batch: int,
                 layout: dict | None = None) -> int:
    """The circuit's rows from one ``gen_settings`` (no calibration), its settings in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ezkl_layer.gen_settings(graph.path, folder / "settings.json", run_args(visibility, graph, batch, layout))
    return json.loads((folder / "settings.json").read_text())["num_rows"]


def size(graph: OnnxModel, visibility: Visibility, work: Path, batch: int) -> tuple[int, int]:
    """The circuit's rows at ezkl's default settings, and the proving key half as many would
    need: the rows are mostly the layers', and the scales, decompositions and rebase
    multipliers the search tries take up to 2x fewer than ezkl's default (2,750 vs 4,452 on a
    small MLP; the zoo LeNet: 13,798 at ezkl's default, 7,910 at multiplier 2 and 6,944 at 10).
    Compile compares that key with the memory budget before any calibration: EZKL's mnist_gan
    (23.5 million rows: logrows 25, a key over 100 GiB) used to calibrate for tens of minutes
    towards a setup that could never run; it is now cut into segments in seconds."""
    with progress.step("size the circuit"):
        rows = circuit_rows(graph, visibility, work / "size", batch)
    logrows = max(rows // 2, 1).bit_length()  # 2^logrows > rows: ezkl keeps rows for blinding
    return rows, PK_BYTES_PER_ROW * 2 ** logrows


def useful_multipliers(graph: OnnxModel, visibility: Visibility, work: Path, batch: int,
                       rows: int) -> list[int]:
    """Of :data:`REBASE_MULTIPLIERS`, 1 and those that take a tenth of the rows off the last
    one kept (``rows``: at 1), from one ``gen_settings`` each: the rows depend on the
    multiplier, not the scale. Each multiplier costs a circuit and a pass over the samples in
    every calibration, and where nothing is divided (EZKL's tree ensembles) none moves a row:
    random_forest's search took 242 s calibrating three, 91 s two."""
    kept, fewest = [1], rows
    for m in REBASE_MULTIPLIERS[1:]:
        try:
            n = circuit_rows(graph, visibility, work / f"size-x{m}", batch, {"scale_rebase_multiplier": m})
        except ProofmintError:  # values past ezkl's integers at this multiplier: not offered
            continue
        if n < 0.9 * fewest:
            kept.append(m)
            fewest = n
    return kept


def _gib(n: int) -> str:
    gib = n / 2**30
    return f"{gib:,.0f} GiB" if gib >= 100 else f"{gib:.3g} GiB" if gib >= 1 else f"{n / 2**20:.3g} MiB"


def choose(target: str, model: OnnxModel, graph: OnnxModel, calibration: Path, probe: Path,
           heldout: np.ndarray, task: str, visibility: Visibility, work: Path,
           tolerance: float = DEFAULT_TOLERANCE, batch: int = 1,
           budget: float = DEFAULT_BUDGET_S, *, rows: int) -> tuple[Candidate, dict]:
    """Settings for ``target``; returns the chosen candidate and a report of the choice.
    ``model`` is the float reference, ``graph`` the ONNX ezkl compiles (``rows`` at ezkl's
    defaults, from :func:`size`)."""
    if target != "balanced":
        with progress.step(f"calibrate (ezkl {target})"):
            base = make_candidate(target, graph, calibration, visibility, target, None, work, batch)
        measure(base, model, heldout, task, work, batch, tolerance)
        if not acceptable(base.quality, tolerance):
            progress.note(f"ezkl's '{target}' settings miss the fidelity goal ({goal_text(task, tolerance)}): "
                          f"{quality_line(base.quality)} — the default target 'balanced' enforces it")
        return base, {"target": target, "goal": goal_text(task, tolerance), "chosen": base.summary()}

    with progress.step("size the circuit at each rebase multiplier"):
        multipliers = useful_multipliers(graph, visibility, work, batch, rows)
    search = Search(model, graph, calibration, probe, heldout, task, visibility, work, tolerance,
                    batch, budget, rows=rows, multipliers=multipliers)
    chosen = balanced(search)
    chosen, layouts = tune_layout(chosen, search)
    chosen, timed = time_finalists(chosen, search)
    report = {
        "target": "balanced",
        "goal": goal_text(task, tolerance),
        "tolerance": tolerance,
        "chosen": chosen.summary(),
        "tried": [c.summary() for c in search.tried],
        "probes": [c.summary() for c in search.probes],
        "measured": search.measured,
        "failed": search.failed,
        "layouts_tried": layouts,
        "timed": timed,
        "search_seconds": round(search.elapsed, 2),
    }
    return chosen, report


def tune_layout(chosen: Candidate, search: Search) -> tuple[Candidate, list[dict]]:
    """The chosen scale and decomposition without Freivalds columns, unless they are what keeps
    the circuit a logrow smaller (the transformer's attention: 27,412 rows with them, 34,068
    without, which would need one more logrow). On a batch-16 LeNet they saved 2 % of rows
    but cost 55 % more proving time and pushed the verifier over the EVM's 24,576-byte limit.

    Wider layouts (more inner columns for a logrow fewer) are not tried: ezkl repeats every
    lookup argument in each inner column, and in 20 timed pairs on 2 cores the wider proved no
    faster as a rule (median 1.05x the narrow one's time, 0.78-1.54x; EZKL's 4l_relu_conv_fc:
    7.4 s at 4 columns vs 5.9 s at 2; lenet_5: 207 s at 4 vs bare ezkl's 175 s at 2), while
    finding that out cost a calibration, a measurement and two timed proofs per compile.
    """
    if not chosen.freivalds_columns:
        return chosen, []
    with progress.step("balanced: choose the layout"):
        cand = search.attempt(f"{chosen.label}-nofreivalds", chosen.scale,
                              chosen.overrides | {"disable_freivalds": True},
                              multipliers=[chosen.rebase])
        if cand is None or cand.logrows > chosen.logrows:
            return chosen, [cand.summary()] if cand is not None else []
        try:  # a layout moves no value, but the witnesses say so, not we
            search.measure(cand)
        except ProvingError:
            return chosen, [cand.summary()]
    return (cand if acceptable(cand.quality, search.tolerance) else chosen), [cand.summary()]


def time_prove(c: Candidate, search: Search) -> float:
    """Seconds one real proof of candidate ``c`` takes here (setup not counted): the check on
    the cost model. The keys stay with the candidate: setup is deterministic, so the chosen
    one's serve the package when it uses this same development SRS."""
    srs = srs_mod.development(c.logrows)
    d = search.work / f"{c.label}-timing"
    d.mkdir(exist_ok=True)
    ezkl_layer.setup(c.compiled_path, d / "vk.key", d / "pk.key", Path(srs.path))
    c.keys, c.keys_srs = d, srs.path
    x = batches(search.heldout[:search.batch], search.batch)[0].items
    wpath, _ = witness_mod.generate(c.compiled_path, x, d, vk=d / "vk.key", srs=Path(srs.path),
                                    sizes=search.model.input_sizes)
    started = time.perf_counter()
    ezkl_layer.prove(wpath, c.compiled_path, d / "pk.key", d / "proof.json", Path(srs.path))
    return round(time.perf_counter() - started, 3)


def fastest_beyond_noise(timed: list[tuple[float, Candidate]]) -> Candidate:
    """The predicted cheapest of ``timed`` (its first) unless another proved faster by more
    than the timing noise: equal-cost circuits of one model timed 7.4-9.2 s both ways."""
    incumbent_s, incumbent = timed[0]
    fastest_s, fastest = min(timed, key=lambda t: t[0])
    return fastest if fastest_s < (1 - TIMING_NOISE) * incumbent_s else incumbent


def time_finalists(chosen: Candidate, search: Search) -> tuple[Candidate, list[dict]]:
    """Among the faithful circuits at the chosen scale (the decompositions tried, and ezkl's own
    default decomposition), the one that proves fastest: the two cheapest of different shapes
    are set up and proven once each when the prediction is a close call and that takes seconds
    (logrows 11-16), and the measured fastest wins when it beats the predicted cheapest by more
    than the timing noise (:func:`fastest_beyond_noise`). Otherwise the prediction decides."""
    # A twin with Freivalds columns at no fewer logrows is what tune_layout already turned down
    # (timing it cost an attention layer 97 s of its 112 s compile, to lose by 27 %).
    pool = [chosen] + [c for c in search.tried if c is not chosen and c.scale == chosen.scale
                       and c.quality is not None and acceptable(c.quality, search.tolerance)
                       and not (c.freivalds_columns and not chosen.freivalds_columns
                                and c.logrows >= chosen.logrows)]
    # ezkl's 2^14-row table needs logrows 15: below that its default can't win, and at the
    # same logrows it is a tie the search's own decomposition takes
    if not search.slow and search.elapsed < search.budget and chosen.logrows > DEFAULT_DECOMP_LOGROWS:
        default = search.attempt(f"s{chosen.scale}-ezkl-default", chosen.scale,
                                 {k: v for k, v in chosen.overrides.items()
                                  if k not in ("decomp_base", "decomp_legs")})
        if default is not None and default.logrows < chosen.logrows:
            search.share_quality(chosen)  # holds where only the range checks are wider
            if default.quality is None:  # ezkl picked another rebase multiplier
                try:
                    search.measure(default)
                except ProvingError:
                    default = None
            if default is not None and acceptable(default.quality, search.tolerance):
                pool.append(default)
    seen, finalists = set(), []
    for c in sorted(pool, key=lambda c: c.cost[0]):  # stable: the search's choice first among equals
        # one per shape: decompositions at the same logrows and columns are a tie the noise
        # would decide (ezkl's default vs a sized one on the zoo generator: 7.4-9.2 s both ways)
        key = (c.logrows, c.layout["num_inner_cols"], c.freivalds_columns > 0)
        if key not in seen:
            seen.add(key)
            finalists.append(c)
    finalists = [c for c in finalists[:FINALISTS] if c.cost[0] <= CLOSE_CALL * finalists[0].cost[0]]
    if len(finalists) < 2 or not MEASURE_MIN_LOGROWS <= max(c.logrows for c in finalists) <= MEASURE_MAX_LOGROWS:
        return finalists[0], []
    timed = []
    with progress.step("balanced: time the finalists (setup + one proof each)", total=len(finalists)):
        for c in finalists:
            try:
                timed.append((time_prove(c, search), c))
            except ProvingError as exc:
                search.failed.append({"label": c.label, "why": f"timing: {str(exc)[:160]}"})
            progress.advance("balanced: time the finalists (setup + one proof each)")
    if not timed:
        return chosen, []
    best = fastest_beyond_noise(timed)
    if best is not chosen and best.quality is None:
        best = chosen
    return best, [{"label": c.label, "logrows": c.logrows, "prove_s": s, "predicted_cost": c.cost[0]}
                  for s, c in timed]
