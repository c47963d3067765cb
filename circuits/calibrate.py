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
- the layout: Freivalds checks (:func:`.walk.tune_layout`), and why wider layouts are not tried.

Proving time follows 2^logrows times the columns, so a candidate's cost is predicted from its
settings (fewest logrows, then fewest rows) without proving anything. Each candidate costs a
calibration; fidelity is measured only at scales that could be chosen (a decomposition or
layout moves no value unless it changes the rebase multiplier), on held-out samples the
calibration never saw, from real witnesses, and
a measurement stops at the first sample that puts the goal out of reach.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer, progress
from proofmint.encoding import Visibility
from proofmint.errors import InvalidModelError, ProofmintError
from proofmint.models.onnx_model import OnnxModel

from .candidate import Candidate, key_bytes, make_candidate, run_args
from .report import CompileReport
from .fidelity import DEFAULT_TOLERANCE, acceptable, goal_text, quality_line
from .search import REBASE_MULTIPLIERS, Search, SearchSpec, measure
from .walk import balanced, time_finalists, tune_layout

TARGETS = ("balanced", "resources", "accuracy")

DEFAULT_BUDGET_S = 600.0
def circuit_rows(graph: OnnxModel, visibility: Visibility, folder: Path, batch: int,
                 layout: dict | None = None) -> int:
    """The circuit's rows from one ``gen_settings`` (no calibration), its settings in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ezkl_layer.gen_settings(graph.path, folder / "settings.json", run_args(visibility, graph, batch, layout))
    return json.loads((folder / "settings.json").read_text())["num_rows"]


def size(graph: OnnxModel, visibility: Visibility, work: Path, batch: int) -> tuple[int, int]:
    """The circuit's rows at ezkl's default settings, and the proving key half as many would
    need at those settings' columns (:func:`.candidate.key_bytes`: a Freivalds argument or a
    hashed input can double or triple a key of the same rows). Half: the rows are mostly the
    layers', and the scales, decompositions and rebase multipliers the search tries take up to
    2x fewer than ezkl's default (2,750 vs 4,452 on a small MLP; the zoo LeNet: 13,798 at
    ezkl's default, 7,910 at multiplier 2 and 6,944 at 10).
    Compile compares that key with the memory budget before any calibration: EZKL's mnist_gan
    (23.5 million rows: logrows 25, a key over 100 GiB) used to calibrate for tens of minutes
    towards a setup that could never run; it now goes to the segment planner in seconds (which
    cuts it, its widest layer split into channel groups, under 12 GiB). The circuit the search
    then chooses is sized again, by its columns (``Candidate.key_bytes``), before its setup."""
    with progress.step("size the circuit"):
        rows = circuit_rows(graph, visibility, work / "size", batch)
    return rows, key_bytes(json.loads((work / "size" / "settings.json").read_text()), rows // 2)


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


def gib(n: int) -> str:
    gib = n / 2**30
    return f"{gib:,.0f} GiB" if gib >= 100 else f"{gib:.3g} GiB" if gib >= 1 else f"{n / 2**20:.3g} MiB"


def free_disk(folder: Path) -> int:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(folder).free


def check_disk(key_bytes: int, folder: Path, what: str, advice: str = "") -> None:
    """Before setup writes them: keys of ``key_bytes`` in all must fit the disk ``folder`` is on
    (the zoo GPT's 8 segment keys are ~89 GB; this machine had 72 GB free: the setups would have
    filled it part way)."""
    free = free_disk(folder)
    if key_bytes > free:
        raise InvalidModelError(f"{what} need about {gib(key_bytes)} of disk; {folder} has {gib(free)} free — "
                                f"free space there, or set PROOFMINT_HOME (or --workspace) to a larger disk{advice}")


def choose(target: str, model: OnnxModel, graph: OnnxModel, calibration: Path, probe: Path,
           heldout: np.ndarray, task: str, visibility: Visibility, work: Path,
           tolerance: float = DEFAULT_TOLERANCE, batch: int = 1,
           budget: float = DEFAULT_BUDGET_S, *, rows: int,
           scale: int | None = None) -> tuple[Candidate, CompileReport]:
    """Settings for ``target``; returns the chosen candidate and a report of the choice.
    ``model`` is the float reference, ``graph`` the ONNX ezkl compiles (``rows`` at ezkl's
    defaults, from :func:`size`); ``scale`` pins the scale (an input read at another circuit's
    output scale, so the two commit to the same field elements)."""
    if target != "balanced":
        with progress.step(f"calibrate (ezkl {target})"):
            base = make_candidate(target, graph, calibration, visibility, target,
                                  [scale] if scale is not None else None, work, batch)
        measure(base, model, heldout, task, work, batch, tolerance)
        if not acceptable(base.quality, tolerance):
            progress.note(f"ezkl's '{target}' settings miss the fidelity goal ({goal_text(task, tolerance)}): "
                          f"{quality_line(base.quality)} — the default target 'balanced' enforces it")
        return base, CompileReport(target, goal_text(task, tolerance), base.summary())

    with progress.step("size the circuit at each rebase multiplier"):
        multipliers = useful_multipliers(graph, visibility, work, batch, rows)
    search = Search(SearchSpec(model, graph, calibration, probe, heldout, task, visibility, work, tolerance,
                               batch, budget, rows=rows, multipliers=tuple(multipliers),
                               **({"scales": (scale,)} if scale is not None else {})))
    chosen = balanced(search)
    chosen, layouts = tune_layout(chosen, search)
    chosen, timed = time_finalists(chosen, search)
    return chosen, CompileReport(
        "balanced", goal_text(task, tolerance), chosen.summary(), tolerance,
        tried=[c.summary() for c in search.tried], probes=[c.summary() for c in search.probes],
        measured=search.measured, failed=search.failed, layouts_tried=layouts, timed=timed,
        search_seconds=round(search.elapsed, 2))
