"""The ``balanced`` walk on its own, through a fake engine that answers with rows, decompositions
and errors the way ezkl would: which scales it fits, measures and chooses (no ezkl, no model)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from proofmint.circuits.candidate import Candidate
from proofmint.circuits.search import Search, SearchSpec
from proofmint.circuits.walk import balanced, no_circuit
from proofmint.encoding import Visibility
from proofmint.errors import InvalidModelError, ProvingError


class FakeEngine:
    """A model whose values need 2 x scale + 6 bits, whose rows follow ``rows(scale)`` (its
    range-check tables never set the logrows) and whose decoded outputs are ``errors[scale]``
    of the span off."""

    def __init__(self, rows, errors):
        self.rows, self.errors = rows, errors
        self.calibrated, self.measured = [], []

    def calibrate(self, spec, label, scale, layout, probe, multipliers, stop_after):
        self.calibrated.append(label)
        base, legs = layout.get("decomp_base", 16384), layout.get("decomp_legs", 2)
        if base ** legs < 2 ** (2 * scale + 6):
            raise ProvingError(f"a value past the decomposition {base}^{legs} at scale {scale}")
        rows = self.rows(scale)
        logrows = rows.bit_length() + 1
        settings = {"num_rows": rows, "model_output_scales": [scale],
                    "required_range_checks": [], "required_lookups": [],
                    "run_args": {"logrows": logrows, "input_scale": scale, "param_scale": scale,
                                 "scale_rebase_multiplier": 1, "lookup_range": [0, 0], "num_inner_cols": 2,
                                 "decomp_base": base, "decomp_legs": legs,
                                 "disable_freivalds": layout.get("disable_freivalds", False)}}
        return Candidate(label, settings, Path(label), Path(label), overrides=dict(layout))

    def measure(self, spec, c):
        self.measured.append(c.scale)
        err = self.errors[c.scale]
        return {"samples": 32, "relative_max_error": err, "max_abs_error": err, "output_range": 1.0}

    def time_prove(self, spec, c):
        return float(c.cost[0])


def _search(engine, budget=600.0) -> Search:
    spec = SearchSpec(model=SimpleNamespace(path=Path("fake.onnx")), graph=None, calibration=Path("c.json"), probe=Path("p.json"),
                      heldout=np.zeros((32, 1)), task="regression", visibility=Visibility(),
                      work=Path("."), tolerance=0.01, batch=1, budget=budget, rows=1000, multipliers=(1,))
    return Search(spec, engine)


ERRORS = {5: 0.03, 6: 0.02, 7: 0.015, 8: 0.008, 9: 0.004, 10: 0.002, 11: 0.001, 12: 0.0008, 13: 0.0005}


def test_where_every_scale_costs_the_same_the_finest_is_fitted_next_and_chosen():
    engine = FakeEngine(lambda s: 2000 + s, ERRORS)  # logrows 12 at every scale
    chosen = balanced(_search(engine))
    assert chosen.scale == 13 and chosen.quality["relative_max_error"] == 0.0005
    fitted = {int(label.split("-")[0][1:]) for label in engine.calibrated}
    assert fitted == {5, 7, 13}  # 9 and 11 could only tie: never fitted
    assert engine.measured == [13]  # a scale is measured only where it could be chosen


def test_where_cost_rises_the_first_faithful_level_wins_or_the_scale_between():
    engine = FakeEngine(lambda s: 200 * 2 ** (s - 5), ERRORS)  # logrows 9, 11, 13, 15, 17
    chosen = balanced(_search(engine))
    # each level is measured once the next costs more: 5, then the scale between it and 7 (6),
    # then 7 (1.5 % off); 9 costs two logrows more, and the scale between, 8 (logrows 12),
    # keeps the outputs for less: 9 is never measured
    assert chosen.scale == 8 and chosen.quality["relative_max_error"] == 0.008
    assert engine.measured == [5, 6, 7, 8]
    base, legs = chosen.layout["decomp_base"], chosen.layout["decomp_legs"]
    assert base ** legs >= 2 ** (2 * 8 + 6)  # the decomposition holds every value, with its margin


def test_a_walk_that_never_meets_the_goal_says_the_best_and_the_tolerance_that_would_pass():
    engine = FakeEngine(lambda s: 2000 + s, {s: 0.05 for s in ERRORS})
    with pytest.raises(InvalidModelError, match=r"best: 5.00%.*pass --tolerance 0.1 to accept that error"):
        balanced(_search(engine))


def test_a_spent_budget_names_the_budget_to_pass():
    search = _search(FakeEngine(lambda s: 2000 + s, ERRORS), budget=1e-9)
    with pytest.raises(InvalidModelError, match=r"spent its 1e-09 s budget .*\(--budget 600\)"):
        balanced(search)
    assert search.out_of_time and "budget" in str(no_circuit(search))
