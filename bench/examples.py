"""``proofmint bench --examples DIR``: models from outside the zoo, proofmint vs bare ezkl.

DIR holds one folder per model, each with ``network.onnx`` (or ``model.onnx``) and one
``input.json``: the shape of EZKL's own ``examples/onnx`` corpus, and of what a new user
brings. For each, in the same run on the same machine:

- proofmint: ``compile`` with defaults (cold, in the bench's workspace), ``prove`` of the
  given input, ``verify``; the fidelity figure is the one compile measured on held-out
  samples built around the input;
- bare ezkl: plain ezkl calls with default run args, ``resources`` calibration on the
  given input, setup, witness, prove, verify (``baseline.bare_ezkl``), its error measured
  on the same held-out samples.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from proofmint import api, progress
from proofmint.circuits import samples as samples_mod
from proofmint.errors import ProofmintError, UsageError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import load_onnx, model_file
from proofmint.prover import load_bundle
from proofmint.store import Workspace

from . import baseline


def find(folder: Path, names: list[str] | None) -> list[tuple[str, Path, Path]]:
    found = []
    for d in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        if not (d / "input.json").is_file() or (names and d.name not in names):
            continue
        try:  # the folder's model as compile reads it: model.onnx, else its only .onnx
            found.append((d.name, model_file(d), d / "input.json"))
        except ProofmintError:
            continue
    if not found:
        raise UsageError(f"no model folders (one .onnx file, or model.onnx, + input.json) in {folder}")
    return found


def one(name: str, onnx: Path, inp: Path, ws: Workspace, work: Path, repeat: int) -> dict:
    row: dict = {"model": name}
    t = time.perf_counter()
    try:
        c = api.compile(onnx, workspace=ws)
        # SRS cached, like bare ezkl's figure: a first SRS of its size (once per machine) apart
        row["srs_s"] = c.timings.get("srs", 0.0)
        row["compile_s"] = round(time.perf_counter() - t - row["srs_s"], 2)
        pkg = c.package
        walls = []
        for r in range(repeat):
            res = api.prove(c.circuit_id, input=inp, out=work / f"{name}-{r}.json", workspace=ws)
            if res.failures or not api.verify(res.bundles[0], workspace=ws).valid:
                raise UsageError(f"{name}: a fresh proof failed: {res.failures}")
            bundle = load_bundle(res.bundles[0])
            walls.append(bundle.timings["prove"])
        q = pkg.quantization
        row["proofmint"] = {"logrows": pkg.logrows, "num_rows": pkg.num_rows, "scale": pkg.input_scale,
                            "prove_s": baseline.summarize(walls), "pk_bytes": pkg.pk_bytes,
                            "relative_max_error": q["relative_max_error"],
                            "given_error": bundle.max_abs_diff / max(q["output_range"], 1e-12),
                            "max_abs_error": q["max_abs_error"], "heldout": q["samples"],
                            "reference": q.get("reference"),
                            "search_s": pkg.calibration_report.search_seconds,
                            "layout": pkg.calibration_report.chosen["layout"]}
    except ProofmintError as exc:
        row["proofmint_error"] = str(exc)
    model = load_onnx(onnx)
    given = samples_mod.load_samples(inp, model)
    heldout = samples_mod.prepare(given, model).heldout
    t = time.perf_counter()
    try:
        row["bare_ezkl"] = run_in_child(baseline.bare_ezkl, str(onnx), str(inp), heldout, repeat,
                                        what=f"bare ezkl {name}")
    except ProofmintError as exc:
        row["bare_ezkl_error"] = str(exc).splitlines()[0][:300]
    row["bare_ezkl_s"] = round(time.perf_counter() - t, 2)
    return row


def run(folder: Path, out: Path, names: list[str] | None, repeat: int, ws: Workspace) -> dict:
    found = find(folder, names)
    work = out / "example-proofs"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with progress.step("examples", total=len(found)):
        for name, onnx, inp in found:
            with progress.step(f"example {name}"):
                rows.append(one(name, onnx, inp, ws, work, repeat))
            progress.advance("examples")
            (out / "examples.json").write_text(json.dumps(rows, indent=2) + "\n")  # kept as it goes
    return {"examples": rows}


def markdown(rows: list[dict], machine: str) -> str:
    lines = ["# Models from outside the zoo: proofmint defaults vs bare ezkl", "", machine, "",
             "Fidelity: max abs error of the decoded outputs as a fraction of the float outputs' "
             "span, on held-out samples built around each model's input.json (the same samples "
             "for both). Bare ezkl = default run args, `resources` calibration on the input.json.", "",
             "| model | proofmint logrows | bare logrows | proofmint prove s | bare prove s | "
             "prove ratio | proofmint error | bare error | cold compile s (proofmint / bare) | "
             "compile ratio | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, b = r.get("proofmint"), r.get("bare_ezkl")
        ratio = (p["prove_s"]["median"] / b["times"]["prove"]["median"]) if p and b else None
        note = "; ".join(x for x in (r.get("proofmint_error"), r.get("bare_ezkl_error")) if x)
        lines.append(
            f"| {r['model']} | {p['logrows'] if p else '—'} | {b['logrows'] if b else '—'} | "
            f"{p['prove_s']['median']:.2f} | " if p else f"| {r['model']} | — | {b['logrows'] if b else '—'} | — | ")
        lines[-1] += (f"{b['times']['prove']['median']:.2f} | " if b else "— | ")
        lines[-1] += (f"{ratio:.2f} | " if ratio else "— | ")
        lines[-1] += (f"{p['relative_max_error']:.2%} | " if p else "— | ")
        lines[-1] += (f"{b['relative_max_error']:.2%} | " if b and b.get("relative_max_error") is not None else "— | ")
        bare_compile = baseline.bare_compile_s(b) if b else None
        lines[-1] += f"{r.get('compile_s', '—')} / {f'{bare_compile:.2f}' if b else '—'} | "
        lines[-1] += (f"{r['compile_s'] / bare_compile:.2f} | " if p and b else "— | ") + f"{note[:160]} |"
    return "\n".join(lines) + "\n"
