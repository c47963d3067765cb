"""Choosing circuit settings: ezkl's own targets, and proofmint's ``balanced``.

ezkl calibrates lookup ranges on the data it's given and reports numeric error, but never
checks whether the quantized circuit still makes the float model's *decisions*. ``balanced``
does: it measures argmax agreement with onnxruntime (or max abs error within a tolerance
for regression/generative outputs) on the held-out calibration set, and among settings
that meet it picks the smallest circuit (fewest logrows, then lowest scale). In ezkl 23,
rows barely move with scale, but lookup ranges of non-linear ops (softmax, sigmoid) do, and
they can set logrows. ezkl's ``resources`` choice is always a candidate, so ``balanced`` is
never a bigger circuit than ``resources``.

``balanced`` then picks the layout of the chosen circuit (:func:`tune_layout`): ezkl's
defaults (2 inner columns; Freivalds checks for matmuls with more than one row) are tuned
for single inferences. On a batch-16 LeNet the Freivalds columns saved 2 % of rows but cost
55 % more proving time and pushed the verifier over the EVM's 24,576-byte limit, and 4 inner
columns halved the rows, one logrow less: 44 s instead of 85 s on 2 cores.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proofmint import progress
from proofmint.errors import ProvingError, ezkl_error
from proofmint.models.onnx_model import OnnxModel
from proofmint.prover import witness as witness_mod
from proofmint.prover.inputs import batches

TARGETS = ("balanced", "resources", "accuracy")
BALANCED_SCALES = (4, 6, 8, 10)
MIN_ARGMAX_AGREEMENT = 0.99
DEFAULT_TOLERANCE = 0.02  # of the output range, for regression / generative outputs


@dataclass
class Candidate:
    label: str
    settings: dict
    settings_path: Path
    compiled_path: Path
    quality: dict | None = None

    @property
    def logrows(self) -> int:
        return self.settings["run_args"]["logrows"]

    @property
    def scale(self) -> int:
        return self.settings["run_args"]["input_scale"]

    @property
    def layout(self) -> dict:
        ra = self.settings["run_args"]
        return {"num_inner_cols": ra["num_inner_cols"],
                "disable_freivalds": bool(ra.get("disable_freivalds", False))}

    @property
    def freivalds_columns(self) -> int:
        return self.settings.get("einsum_params", {}).get("total_einsum_col_size", 0)

    def summary(self) -> dict:
        return {"label": self.label, "logrows": self.logrows, "num_rows": self.settings["num_rows"],
                "input_scale": self.scale, "param_scale": self.settings["run_args"]["param_scale"],
                "layout": self.layout | {"freivalds_columns": self.freivalds_columns},
                "quality": self.quality}


def run_args(visibility: dict[str, str], model: OnnxModel, batch: int = 1, layout: dict | None = None):
    import ezkl

    ra = ezkl.PyRunArgs()
    if model.batch_axis:  # ezkl fixes symbolic dims from `variables`; a batch circuit sets N
        ra.variables = [(model.batch_axis, batch)]
    ra.input_visibility = visibility["input"]
    ra.output_visibility = visibility["output"]
    ra.param_visibility = visibility["param"]
    for name, value in (layout or {}).items():
        setattr(ra, name, value)
    return ra


def make_candidate(label: str, model: OnnxModel, calibration: Path, visibility: dict,
                   target: str, scales: list[int] | None, work: Path, batch: int = 1,
                   layout: dict | None = None) -> Candidate:
    """gen_settings + calibrate_settings + compile_circuit for one choice of scales and layout."""
    import ezkl

    d = work / label
    d.mkdir(parents=True, exist_ok=True)
    settings_path, compiled = d / "settings.json", d / "model.compiled"
    try:
        ezkl.gen_settings(str(model.path), str(settings_path),
                          py_run_args=run_args(visibility, model, batch, layout))
    except Exception as exc:
        raise ezkl_error("gen_settings", exc) from None
    try:
        ezkl.calibrate_settings(str(calibration), str(model.path), str(settings_path), target,
                                scales=scales)
    except Exception as exc:
        raise ezkl_error(f"calibrate_settings (target {target}, scales {scales})", exc) from None
    try:
        ezkl.compile_circuit(str(model.path), str(compiled), str(settings_path))
    except Exception as exc:
        raise ezkl_error("compile_circuit", exc) from None
    return Candidate(label, json.loads(settings_path.read_text()), settings_path, compiled)


def measure(c: Candidate, model: OnnxModel, samples: np.ndarray, task: str, work: Path,
            batch: int = 1) -> dict:
    """Agreement of the circuit with onnxruntime over ``samples`` (via real witnesses; a batch
    circuit runs them ``batch`` at a time, the last batch padded and its padding ignored)."""
    scales = c.settings["model_output_scales"]
    wdir = work / f"{c.label}-witness"
    wdir.mkdir(exist_ok=True)
    ref = [np.concatenate([o.ravel() for o in model.run(x)]) for x in samples]
    quant = []
    name = f"measure {c.label}"
    with progress.step(name, total=len(samples)):
        for i, chunk in enumerate(batches(samples, batch)):
            _, w = witness_mod.generate(c.compiled_path, chunk.items, wdir, stem=f"w{i}")
            quant.extend(witness_mod.split_items(witness_mod.decode_outputs(w, scales), batch)[:chunk.real])
            progress.advance(name, chunk.real)
    shutil.rmtree(wdir, ignore_errors=True)
    c.quality = witness_mod.agreement(ref, quant, task)
    return c.quality


def acceptable(quality: dict, tolerance: float) -> bool:
    if "argmax_agreement" in quality:
        return quality["argmax_agreement"] >= MIN_ARGMAX_AGREEMENT
    return quality["relative_max_error"] <= tolerance


def choose(target: str, model: OnnxModel, calibration: Path, samples: np.ndarray, task: str,
           visibility: dict, work: Path, tolerance: float = DEFAULT_TOLERANCE, batch: int = 1
           ) -> tuple[Candidate, dict]:
    """Settings for ``target``; returns the chosen candidate and a report of the choice."""
    with progress.step(f"calibrate ({'resources' if target == 'balanced' else target})"):
        base = make_candidate(target if target != "balanced" else "resources", model, calibration,
                              visibility, "resources" if target == "balanced" else target, None, work,
                              batch)
    measure(base, model, samples, task, work, batch)
    if target != "balanced":
        return base, {"target": target, "chosen": base.summary()}

    candidates = [base]
    with progress.step("balanced: try lower scales", total=len(BALANCED_SCALES)):
        for s in BALANCED_SCALES:
            if s < base.scale:
                try:
                    cand = make_candidate(f"scale{s}", model, calibration, visibility,
                                          "resources", [s], work, batch)
                except ProvingError:
                    progress.advance("balanced: try lower scales")
                    continue  # a scale ezkl can't calibrate is simply not a candidate
                if cand.logrows <= base.logrows:
                    candidates.append(cand)
            progress.advance("balanced: try lower scales")

    # Fastest first: fewest logrows, then fewest rows, then lowest scale.
    candidates.sort(key=lambda c: (c.logrows, c.settings["num_rows"], c.scale))
    chosen = None
    for cand in candidates:
        if cand.quality is None:
            measure(cand, model, samples, task, work, batch)
        if acceptable(cand.quality, tolerance):
            chosen = cand
            break
    if chosen is None:
        chosen = base
        progress.note(
            f"no setting reached the agreement goal; keeping ezkl's 'resources' choice "
            f"({_quality_line(base.quality)}) — try --target accuracy"
        )
    chosen, layouts = tune_layout(chosen, model, calibration, samples, task, visibility, work,
                                  tolerance, batch)
    report = {
        "target": "balanced",
        "goal": (f"argmax agreement >= {MIN_ARGMAX_AGREEMENT:.0%}" if task == "classification"
                 else f"max abs error <= {tolerance:.0%} of output range"),
        "chosen": chosen.summary(),
        "ezkl_resources": base.summary(),
        "tried": [c.summary() for c in candidates],
        "layouts_tried": layouts,
    }
    return chosen, report


def _rows_bound(settings: dict) -> bool:
    """Whether logrows is set by the rows used, not by a lookup or range-check table, so
    halving the rows (twice the columns) can take one logrow off."""
    half = 2 ** (settings["run_args"]["logrows"] - 1)
    tables = [hi - lo + 1 for lo, hi in settings.get("required_range_checks", [])]
    if settings.get("required_lookups"):
        lo, hi = settings["run_args"]["lookup_range"]
        tables.append(hi - lo + 1)
    return settings["num_rows"] > half and max(tables, default=0) < half


def tune_layout(chosen: Candidate, model: OnnxModel, calibration: Path, samples: np.ndarray,
                task: str, visibility: dict, work: Path, tolerance: float, batch: int
                ) -> tuple[Candidate, list[dict]]:
    """The chosen scales in the fastest layout: fewest logrows, then no Freivalds columns.

    Proving time follows 2^logrows times the columns, so a layout is only worth more columns
    when it takes a logrow off. Freivalds checks are dropped unless they are what keeps the
    circuit a logrow smaller (the transformer's attention: 27,412 rows with them, 34,068
    without, which would need one more logrow)."""
    best, tried = chosen, []

    def attempt(label: str, layout: dict) -> Candidate | None:
        try:
            cand = make_candidate(label, model, calibration, visibility, "resources",
                                  [chosen.scale], work, batch, layout)
        except ProvingError:
            return None  # a layout ezkl can't calibrate is simply not a candidate
        tried.append(cand)
        return cand

    with progress.step("balanced: choose the layout"):
        if best.freivalds_columns:
            cand = attempt(f"{chosen.label}-nofreivalds", best.layout | {"disable_freivalds": True})
            if cand is not None and cand.logrows <= best.logrows:
                best = cand
        if _rows_bound(best.settings):
            wider = best.layout | {"num_inner_cols": 2 * best.layout["num_inner_cols"]}
            cand = attempt(f"{chosen.label}-cols{wider['num_inner_cols']}", wider)
            if cand is not None and cand.logrows < best.logrows:
                best = cand
        if best is not chosen:  # a layout moves no value, but the witnesses say so, not we
            measure(best, model, samples, task, work, batch)
            if not acceptable(best.quality, tolerance):
                best = chosen
    return best, [c.summary() for c in tried]


def _quality_line(q: dict) -> str:
    if "argmax_agreement" in q:
        return f"argmax agreement {q['argmax_agreement']:.1%}"
    return f"max abs error {q['max_abs_error']:.4g} ({q['relative_max_error']:.1%} of range)"
