"""``proofmint bench --corpus``: every file of the corpus (:mod:`proofmint.models.corpus`) through
proofmint's defaults, bare ezkl and JSTprove, in the same run on the same machine.

Per file, what a new user would see: proofmint compiles the folder, proves its input.json and
verifies (:func:`examples.one`, which also runs bare ezkl's recipe on the same folder); JSTprove
(the other ONNX prover a user can install from the registry here, a GKR prover, Python 3.12
only) runs in its own interpreter on the flavours asked for. Each is classed:

- ``ok``: the proof verifies and the outputs are the float model's within 1 % of their span
  (proofmint: on the held-out samples and on the given input; bare ezkl: on the held-out
  samples its circuit can run; JSTprove: on the samples it runs);
- ``unfaithful``: a proof, but outputs further off than that;
- ``refused``: no proof (the tool's own words in the note).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from proofmint import progress
from proofmint.circuits import samples as samples_mod
from proofmint.errors import UsageError
from proofmint.models import corpus
from proofmint.models.onnx_model import load_onnx, model_file
from proofmint.store import Workspace

from . import examples as examples_mod

TOLERANCE = 0.01
JSTPROVE_TIMEOUT_S = 900
JSTPROVE_SAMPLES = 16  # run through its circuit for fidelity; the first is proven


def run(out: Path, ws: Workspace, layers: list[str] | None, flavours: list[str] | None,
        jstprove: str | None, jstprove_flavours: list[str]) -> dict:
    layers = layers or corpus.names()
    flavours = flavours or list(corpus.FLAVOURS)
    unknown = sorted(set(layers) - set(corpus.names())) + sorted(set(flavours) - set(corpus.FLAVOURS))
    if unknown:
        raise UsageError(f"unknown corpus layer or flavour {', '.join(unknown)} — layers: "
                         f"{', '.join(corpus.names())}; flavours: {', '.join(corpus.FLAVOURS)}")
    work = out / "corpus-proofs"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with progress.step("corpus", total=len(layers) * len(flavours)):
        for layer in layers:
            for flavour in flavours:
                with progress.step(f"corpus {layer} {flavour}"):
                    rows.append(one(layer, flavour, out / "corpus" / f"{layer}-{flavour}", ws, work,
                                    jstprove if flavour in jstprove_flavours else None))
                progress.advance("corpus")
                (out / "corpus.json").write_text(json.dumps({"corpus": rows}, indent=2) + "\n")
    return {"corpus": rows, "summary": summary(rows)}


def one(layer: str, flavour: str, folder: Path, ws: Workspace, work: Path, jstprove: str | None) -> dict:
    row: dict = {"model": f"{layer}-{flavour}", "layer": layer, "flavour": flavour}
    try:
        e = corpus.export(layer, flavour, folder)
    except UsageError as exc:
        return row | {"export_error": str(exc)}
    row |= {"ir_version": e.ir_version, "opset": e.opset, "external_data": e.external_data}
    row |= examples_mod.one(row["model"], model_file(folder), folder / "input.json", ws, work, 1)
    row["proofmint_status"] = _status(row.get("proofmint"), ("relative_max_error", "given_error"))
    row["bare_status"] = _status(row.get("bare_ezkl"), ("relative_max_error",))
    if jstprove:
        row["jstprove"] = run_jstprove(jstprove, folder, work / f"jst-{row['model']}")
        row["jstprove_status"] = _status(row["jstprove"] if row["jstprove"].get("valid") else None,
                                         ("relative_max_error",))
    return row


def _status(result: dict | None, errors: tuple[str, ...]) -> str:
    if not result:
        return "refused"
    worst = max((result.get(k) for k in errors if result.get(k) is not None), default=None)
    return "ok" if worst is not None and worst <= TOLERANCE else "unfaithful"


def run_jstprove(python: str, folder: Path, work: Path) -> dict:
    """JSTprove on the folder's model: the given input proven and verified, it and held-out
    samples run through its circuit for their outputs, judged against the float model."""
    model = load_onnx(folder)
    given = samples_mod.load_samples(folder / "input.json", model)
    xs = samples_mod.prepare(given, model).heldout[:JSTPROVE_SAMPLES]
    work.mkdir(parents=True, exist_ok=True)
    (work / "samples.json").write_text(json.dumps({"inputs": xs.tolist()}))
    started = time.perf_counter()
    try:
        done = subprocess.run([python, str(Path(__file__).with_name("jstprove_run.py")), str(model.path),
                               str(work / "samples.json"), str(work)], capture_output=True, text=True,
                              timeout=JSTPROVE_TIMEOUT_S)
        res = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else \
            {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]}
    except subprocess.TimeoutExpired:
        res = {"error": f"stopped after {JSTPROVE_TIMEOUT_S} s"}
    res["wall_s"] = round(time.perf_counter() - started, 2)
    outs = res.pop("outputs", None) or []
    runs = [model.run(x) for x in xs]
    ref = [np.concatenate([o.ravel() for o in r]) for r in runs]
    layout = _layout(outs[0], runs[0][0]) if outs and outs[0] is not None and len(runs[0]) == 1 else None
    pairs = [(r, layout[1](np.asarray(o, dtype=np.float64), r.shape).ravel()) for r, o in zip(ref, outs)
             if o is not None and layout is not None and layout[1](np.asarray(o, dtype=np.float64), r.shape) is not None]
    if pairs:
        res["output_layout"] = layout[0]
        span = max(float(np.ptp(np.stack(ref))), 1e-12)
        res["relative_max_error"] = max(float(np.abs(r - o).max()) for r, o in pairs) / span
        res["samples"] = len(pairs)
    return res


def _unpad(flat: np.ndarray, shape: tuple) -> np.ndarray | None:
    """``shape`` values from JSTprove's flat output, each innermost run padded to a power of two."""
    width = 1 << max(shape[-1] - 1, 0).bit_length()
    rows = int(np.prod(shape[:-1]))
    if flat.size < rows * width:
        return None
    return flat[:rows * width].reshape(rows, width)[:, :shape[-1]].reshape(shape)


def _channels_last(flat: np.ndarray, shape: tuple) -> np.ndarray | None:
    if len(shape) < 3:
        return None
    moved = _unpad(flat, (shape[0], *shape[2:], shape[1]))
    return None if moved is None else np.moveaxis(moved, -1, 1)


LAYOUTS = {"row-major": _unpad, "channels-last": _channels_last}


def _layout(first, ref: np.ndarray) -> tuple[str, object] | None:
    """How JSTprove lays out this output tensor (its witness keeps no shape): each innermost run
    padded to a power of two, row-major or with the channel axis last. The layout that matches
    the float model on the first sample is used for every sample, and named in the results."""
    scored = []
    for name, fn in LAYOUTS.items():
        got = fn(np.asarray(first, dtype=np.float64), ref.shape)
        if got is not None:
            scored.append((float(np.abs(got - ref).max()), name, fn))
    return min(scored)[1:] if scored else None


def summary(rows: list[dict]) -> dict:
    exported = [r for r in rows if "export_error" not in r]
    count = {tool: {s: sum(r.get(f"{tool}_status") == s for r in exported) for s in ("ok", "unfaithful", "refused")}
             for tool in ("proofmint", "bare", "jstprove")}
    missing = [r["model"] for r in exported if r["bare_status"] == "ok" and r["proofmint_status"] != "ok"]
    return {"files": len(exported), "torch_refused": len(rows) - len(exported), "counts": count,
            "bare_ok_proofmint_not": missing,
            "ir3_ok": sum(r["proofmint_status"] == "ok" for r in exported if r.get("ir_version") == 3),
            "ir3_files": sum(r.get("ir_version") == 3 for r in exported)}


def markdown(res: dict, machine: str) -> str:
    s = res["summary"]
    c = s["counts"]
    lines = ["# The corpus: every common torch layer as other exporters write it", "", machine, "",
             f"{s['files']} files ({s['torch_refused']} more that torch itself can't export at that opset). "
             f"proofmint: {c['proofmint']['ok']} ok, {c['proofmint']['unfaithful']} unfaithful, "
             f"{c['proofmint']['refused']} refused; bare ezkl: {c['bare']['ok']} ok, {c['bare']['unfaithful']} "
             f"unfaithful, {c['bare']['refused']} refused"
             + (f"; JSTprove: {c['jstprove']['ok']} ok, {c['jstprove']['unfaithful']} unfaithful, "
                f"{c['jstprove']['refused']} refused (of the files it was run on)" if any(c['jstprove'].values()) else "")
             + f". IR 3 files proofmint proves faithfully: {s['ir3_ok']} of {s['ir3_files']}. Files bare ezkl "
             f"proves faithfully and proofmint doesn't: {', '.join(s['bare_ok_proofmint_not']) or 'none'}.", "",
             "Faithful = the proof verifies and the outputs are within 1 % of the float outputs' span "
             "(proofmint: on held-out samples spanning the input's range and on the given input; bare "
             "ezkl, calibrated on the one input.json as its recipe does: on the held-out samples its "
             "circuit can run, the count it can't in brackets; JSTprove: on 16 samples through its circuit).", "",
             "| file | IR | opset | proofmint | logrows | prove s | error | bare ezkl | logrows | prove s | error "
             "| JSTprove | prove s | verify s | proof KB | error | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["corpus"]:
        if "export_error" in r:
            continue
        p, b, j = r.get("proofmint"), r.get("bare_ezkl"), r.get("jstprove")
        cells = [r["model"], str(r["ir_version"]), str(r["opset"]), r["proofmint_status"]]
        cells += [str(p["logrows"]), f"{p['prove_s']['median']:.2f}",
                  f"{max(p['relative_max_error'], p.get('given_error', 0)):.2%}"] if p else ["—"] * 3
        cells.append(r["bare_status"])
        cells += [str(b["logrows"]), f"{b['times']['prove']['median']:.2f}",
                  (f"{b['relative_max_error']:.2%}" if b.get("relative_max_error") is not None else "—")
                  + (f" ({b['witness_failures']})" if b.get("witness_failures") else "")] if b else ["—"] * 3
        if j is not None:
            cells += [r["jstprove_status"], f"{j['prove_s']:.1f}" if "prove_s" in j else "—",
                      f"{j['verify_s']:.1f}" if "verify_s" in j else "—",
                      f"{j['proof_bytes'] / 1e3:,.0f}" if "proof_bytes" in j else "—",
                      f"{j['relative_max_error']:.2%}" if "relative_max_error" in j else "—"]
        else:
            cells += ["not run", "—", "—", "—", "—"]
        note = "; ".join(x for x in (r.get("proofmint_error"), r.get("bare_ezkl_error"),
                                     (j or {}).get("error"), "; ".join((j or {}).get("reasons", []))) if x)
        cells.append(note[:160].replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def jstprove_python(given: str | None) -> str | None:
    """The interpreter that has JSTprove: the one given, else the project's (``make jstprove``)."""
    if given:
        return given
    local = Path(sys.prefix).parent / ".jstprove" / "bin" / "python"
    return str(local) if local.is_file() else None
