"""Choosing circuit settings: ezkl's own targets, and proofmint's ``balanced``.

ezkl calibrates lookup ranges on the data it's given and reports numeric error, but never
checks whether the quantized circuit still makes the float model's *decisions*. ``balanced``
does: it measures argmax agreement with onnxruntime (or max abs error within a tolerance
for regression/generative outputs) on the held-out calibration set, and among settings
that meet it picks the smallest circuit (fewest logrows, then lowest scale). In ezkl 23,
rows barely move with scale, but lookup ranges of non-linear ops (softmax, sigmoid) do, and
they can set logrows. ezkl's ``resources`` choice is always a candidate, so ``balanced`` is
never a bigger circuit than ``resources``.
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

    def summary(self) -> dict:
        return {"label": self.label, "logrows": self.logrows, "num_rows": self.settings["num_rows"],
                "input_scale": self.scale, "param_scale": self.settings["run_args"]["param_scale"],
                "quality": self.quality}


def run_args(visibility: dict[str, str], model: OnnxModel, batch: int = 1):
    import ezkl

    ra = ezkl.PyRunArgs()
    if model.batch_axis:  # ezkl fixes symbolic dims from `variables`; a batch circuit sets N
        ra.variables = [(model.batch_axis, batch)]
    ra.input_visibility = visibility["input"]
    ra.output_visibility = visibility["output"]
    ra.param_visibility = visibility["param"]
    return ra


def make_candidate(label: str, model: OnnxModel, calibration: Path, visibility: dict,
                   target: str, scales: list[int] | None, work: Path, batch: int = 1) -> Candidate:
    """gen_settings + calibrate_settings + compile_circuit for one choice of scales."""
    import ezkl

    d = work / label
    d.mkdir(parents=True, exist_ok=True)
    settings_path, compiled = d / "settings.json", d / "model.compiled"
    try:
        ezkl.gen_settings(str(model.path), str(settings_path), py_run_args=run_args(visibility, model, batch))
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
    report = {
        "target": "balanced",
        "goal": (f"argmax agreement >= {MIN_ARGMAX_AGREEMENT:.0%}" if task == "classification"
                 else f"max abs error <= {tolerance:.0%} of output range"),
        "chosen": chosen.summary(),
        "ezkl_resources": base.summary(),
        "tried": [c.summary() for c in candidates],
    }
    return chosen, report


def _quality_line(q: dict) -> str:
    if "argmax_agreement" in q:
        return f"argmax agreement {q['argmax_agreement']:.1%}"
    return f"max abs error {q['max_abs_error']:.4g} ({q['relative_max_error']:.1%} of range)"
