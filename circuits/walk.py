"""The ``balanced`` walk: up the scales, each scale's cheapest range-check decomposition, the
first level of cost that keeps the model's outputs; then the layout and, on a close call, a
timed proof of the finalists. Everything it calibrates or measures goes through the search's
engine (:mod:`.search`)."""

from __future__ import annotations

import math

from proofmint import progress
from proofmint.errors import InvalidModelError, ProvingError

from .candidate import Candidate, Hint, decomposition, walk_key
from .fidelity import acceptable
from .search import (CLOSE_CALL, DECOMP_MARGIN_BITS, DEFAULT_DECOMP_LOGROWS, FINALISTS, MAX_DECOMP_BITS,
                     MEASURE_MAX_LOGROWS, MEASURE_MIN_LOGROWS, TABLE_BITS, TIMING_NOISE, Search)

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
    while fitted is None and bits + 4 <= MAX_DECOMP_BITS - DECOMP_MARGIN_BITS and not search.over_budget:
        bits += 4
        fitted = probe(bits)
    if fitted is None:
        return None, None
    if not search.slow and search.bits_move_rows is not False:
        bits, fitted = _walk_widths(search, scale, bits, fitted, hint, probe)
    return _final_legs(search, scale, bits, fitted), (scale, bits, fitted.rebase)


def _walk_widths(search: Search, scale: int, bits: int, fitted: Candidate, hint: Hint | None, probe
                 ) -> tuple[int, Candidate]:
    """Up the decomposition's widths while a wider one takes logrows off (:func:`walk_key`),
    until the multiplier to reach; at the first scale, down while the rows don't grow."""
    target = search.spec.multipliers[-1] if hint is None else hint[2]
    walked_up, step = False, 4
    while fitted.rebase < target and bits + step <= MAX_DECOMP_BITS - DECOMP_MARGIN_BITS and step <= 8:
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
        search.bits_move_rows = len({p.settings["num_rows"] for p in search.probes if p.scale == scale}) > 1
    return bits, fitted


def _final_legs(search: Search, scale: int, bits: int, fitted: Candidate) -> Candidate | None:
    """The probe's decomposition with a margin, calibrated on every sample, as 256-row tables or
    as two legs, whichever the settings predict cheaper (two legs are rows-bound where their
    2^(final/2)-row table fits the probe's rows' logrows: 256-row tables, more legs and rows,
    can't be cheaper there)."""
    rows_logrows = fitted.settings["num_rows"].bit_length()
    # no multiplier above the probe's: none fitted its bits (and each costs a circuit)
    multipliers = [m for m in search.spec.multipliers if m <= fitted.rebase]
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
            return min(options, key=lambda c: c.cost)
    return None


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
        if acceptable(cand.quality, search.spec.tolerance):
            return cand
    return None


def between(search: Search, failed: list[Candidate], costlier: Candidate,
            hint: Hint | None) -> Candidate | None:
    """The scale just below ``costlier``'s, where the level under it missed the goal: the step
    from one level to the next can be a whole logrow or two (the zoo generator: scale 7 at
    logrows 13 is 1.24 % of its span off, scale 9 needs logrows 15), and the scale between can
    keep the outputs for less."""
    mid = costlier.scale - 1
    if mid <= max(c.scale for c in failed) or search.elapsed > search.spec.budget:
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
    walk = _Levels(search)
    scales = search.spec.scales
    with progress.step("balanced: search scales", total=len(scales)):
        for scale in scales:
            chosen = walk.step(scale)
            if chosen is not None:
                return chosen
            if search.over_budget:
                break
        chosen = first_faithful(search, walk.level)
        if chosen is not None:
            return chosen
    raise no_circuit(search)


class _Levels:
    """The walk's place: the last fit's hint, the level of scales fitted at one cost, and the
    finest scale when it was fitted ahead."""

    def __init__(self, search: Search):
        self.search, self.hint, self.level, self.ahead = search, None, [], {}

    def step(self, scale: int) -> Candidate | None:
        """Fit ``scale``; the chosen circuit when that settles the search."""
        search, before = self.search, self.hint
        cand, self.hint = self.ahead.pop(scale) if scale in self.ahead else fit_scale(search, scale, self.hint)
        progress.advance("balanced: search scales")
        if cand is None:
            return None
        if self.level and cand.cost[0] > self.level[0].cost[0]:
            chosen = first_faithful(search, self.level) or between(search, self.level, cand, before)
            if chosen is not None:
                return chosen
            self.level = []
        self.level.append(cand)
        if search.slow:
            chosen = first_faithful(search, self.level)
            if chosen is None:
                self.level = []
            return chosen
        return self.finest_if_same_cost(scale, cand)

    def finest_if_same_cost(self, scale: int, cand: Candidate) -> Candidate | None:
        """Two scales at one cost: fit the finest next (unless its tables, doubling with each
        scale, would outgrow the circuit); costing the same too, and faithful, it is the choice."""
        search, level, scales = self.search, self.level, self.search.spec.scales
        finest = scales[-1]
        if not (len(level) >= 2 and level[-1].cost[0] == level[0].cost[0] and len(scales) >= 3 and scale < scales[-3]
                and cand.lookup_rows * 2 ** (finest - scale) < 2 ** cand.logrows and not search.over_budget):
            return None
        self.ahead[finest] = fit_scale(search, finest, self.hint)
        top = self.ahead[finest][0]
        if top is not None and top.cost[0] == level[0].cost[0]:
            return first_faithful(search, [top])
        return None


def no_circuit(search: Search) -> InvalidModelError:
    """Why no circuit came out of the walk, and what to pass to get one."""
    spec = search.spec
    measured = [c for c in search.tried if c.quality is not None]
    best = min((c.quality["relative_max_error"] for c in measured), default=None)
    more = f"--budget {max(4 * spec.budget, 600):g}"  # what to pass when the budget ran out
    if best is None and search.out_of_time and not search.tried:
        why = f"; last: {search.failed[-1]['why']}" if search.failed else ""
        return InvalidModelError(
            f"the settings search for {spec.model.path.name} ({spec.rows:,} rows) spent its "
            f"{spec.budget:g} s budget before any circuit was calibrated ({len(search.failed)} "
            f"settings stopped or failed{why}) — pass a larger budget ({more}), or shrink the model")
    if best is None:
        why = search.failed[-1]["why"] if search.failed else "no setting calibrated"
        return InvalidModelError(
            f"ezkl could not calibrate {spec.model.path.name} at any scale in {list(spec.scales)} "
            f"({len(search.failed)} settings tried; last: {why}) — check the model's ops and "
            "calibration data, or try --target resources")
    agree = [a for a in (c.quality.get("argmax_agreement") for c in measured) if a is not None]
    return InvalidModelError(
        f"no circuit kept {spec.model.path.name}'s outputs within {spec.tolerance:.2%} of "
        f"their span (best: {best:.2%}" + (f", argmax agreement {max(agree):.0%}" if agree else "")
        + f"; scales {sorted({c.scale for c in measured})} tried in {search.elapsed:.0f} s) — "
        + (f"the {spec.budget:g} s budget ran out before the finer scales: pass {more} to try "
           "them, or " if search.out_of_time else "")
        + f"pass --tolerance {max(2 * best, spec.tolerance * 2):.2g} to accept that error, or "
        "calibration data closer to the inputs you will prove")


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
    return (cand if acceptable(cand.quality, search.spec.tolerance) else chosen), [cand.summary()]


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
    finalists = _finalists(_faithful_pool(chosen, search))
    if len(finalists) < 2 or not MEASURE_MIN_LOGROWS <= max(c.logrows for c in finalists) <= MEASURE_MAX_LOGROWS:
        return finalists[0], []
    timed = []
    with progress.step("balanced: time the finalists (setup + one proof each)", total=len(finalists)):
        for c in finalists:
            try:
                timed.append((search.engine.time_prove(search.spec, c), c))
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


def _faithful_pool(chosen: Candidate, search: Search) -> list[Candidate]:
    """The faithful circuits at the chosen scale, the chosen first, and ezkl's own default
    decomposition when it could take a logrow off. A twin with Freivalds columns at no fewer
    logrows is what tune_layout already turned down (timing it cost an attention layer 97 s of
    its 112 s compile, to lose by 27 %)."""
    tolerance = search.spec.tolerance
    pool = [chosen] + [c for c in search.tried if c is not chosen and c.scale == chosen.scale
                       and c.quality is not None and acceptable(c.quality, tolerance)
                       and not (c.freivalds_columns and not chosen.freivalds_columns
                                and c.logrows >= chosen.logrows)]
    # ezkl's 2^14-row table needs logrows 15: below that its default can't win, and at the
    # same logrows it is a tie the search's own decomposition takes
    if search.slow or search.over_budget or chosen.logrows <= DEFAULT_DECOMP_LOGROWS:
        return pool
    default = search.attempt(f"s{chosen.scale}-ezkl-default", chosen.scale,
                             {k: v for k, v in chosen.overrides.items() if k not in ("decomp_base", "decomp_legs")})
    if default is None or default.logrows >= chosen.logrows:
        return pool
    search.share_quality(chosen)  # holds where only the range checks are wider
    if default.quality is None:  # ezkl picked another rebase multiplier
        try:
            search.measure(default)
        except ProvingError:
            return pool
    return pool + [default] if acceptable(default.quality, tolerance) else pool


def _finalists(pool: list[Candidate]) -> list[Candidate]:
    """The cheapest of each shape, the two cheapest within the close-call factor of the first.
    One per shape: decompositions at the same logrows and columns are a tie the noise would
    decide (ezkl's default vs a sized one on the zoo generator: 7.4-9.2 s both ways)."""
    seen, finalists = set(), []
    for c in sorted(pool, key=lambda c: c.cost[0]):  # stable: the search's choice first among equals
        key = (c.logrows, c.layout["num_inner_cols"], c.freivalds_columns > 0)
        if key not in seen:
            seen.add(key)
            finalists.append(c)
    return [c for c in finalists[:FINALISTS] if c.cost[0] <= CLOSE_CALL * finalists[0].cost[0]]
