"""Same-run baselines with no proofmint code in the measured path.

- ``bare_ezkl``: ezkl's own recipe (gen_settings with default run args, calibrate_settings
  with ``resources``, compile_circuit, setup, gen_witness, prove), timed call by call.
- ``direct_prove``: ``ezkl.gen_witness`` + ``ezkl.prove`` on a proofmint circuit, to set
  against ``proofmint prove`` on the same circuit (the overhead).

Both run in a child process (ezkl holds the GIL) through ``run_in_child``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_ezkl(onnx: str, calibration: str, samples: np.ndarray, srs_dir: str, repeat: int) -> dict:
    import ezkl

    from proofmint.models.onnx_model import load_onnx

    work = Path(tempfile.mkdtemp(prefix="bare-ezkl-"))
    timings: dict = {}

    def timed(name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        timings.setdefault(name, []).append(time.perf_counter() - t)
        return out

    settings, compiled = str(work / "settings.json"), str(work / "model.compiled")
    timed("gen_settings", ezkl.gen_settings, onnx, settings)
    timed("calibrate", ezkl.calibrate_settings, calibration, onnx, settings, "resources")
    timed("compile_circuit", ezkl.compile_circuit, onnx, compiled, settings)
    s = json.loads(Path(settings).read_text())
    k = s["run_args"]["logrows"]
    srs = Path(srs_dir) / f"dev-k{k}.srs"  # the same development SRS proofmint uses
    if not srs.exists():
        timed("gen_srs", ezkl.gen_srs, str(srs), k)
    vk, pk = str(work / "vk.key"), str(work / "pk.key")
    timed("setup", ezkl.setup, compiled, vk, pk, srs_path=str(srs))
    inp = work / "input.json"
    inp.write_text(json.dumps({"input_data": [samples[0].ravel().tolist()]}))
    for i in range(repeat):
        timed("witness", ezkl.gen_witness, str(inp), compiled, str(work / "w.json"), vk_path=vk,
              srs_path=str(srs))
        timed("prove", ezkl.prove, str(work / "w.json"), compiled, pk, str(work / "proof.json"),
              srs_path=str(srs))
    timed("verify", ezkl.verify, str(work / "proof.json"), settings, vk, srs_path=str(srs))

    # Agreement on the held-out set: the quantized circuit vs onnxruntime (measurement only).
    model = load_onnx(onnx)
    scales = s["model_output_scales"]
    agree, max_err = [], 0.0
    for x in samples:
        inp.write_text(json.dumps({"input_data": [x.ravel().tolist()]}))
        w = ezkl.gen_witness(str(inp), compiled, str(work / "w.json"))
        q = np.concatenate([[ezkl.felt_to_float(f, sc) for f in o] for o, sc in zip(w["outputs"], scales)])
        ref = np.concatenate([o.ravel() for o in model.run(x)])
        agree.append(int(q.argmax() == ref.argmax()))
        max_err = max(max_err, float(np.abs(q - ref).max()))
    return {
        "logrows": k, "num_rows": s["num_rows"], "input_scale": s["run_args"]["input_scale"],
        "pk_bytes": Path(pk).stat().st_size,
        "times": {n: summarize(v) for n, v in timings.items()},
        "argmax_agreement": float(np.mean(agree)), "max_abs_error": max_err,
    }


def direct_prove(compiled: str, pk: str, vk: str, srs: str, x: np.ndarray, repeat: int) -> dict:
    import ezkl

    work = Path(tempfile.mkdtemp(prefix="direct-prove-"))
    inp = work / "input.json"
    inp.write_text(json.dumps({"input_data": [x.ravel().tolist()]}))
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        ezkl.gen_witness(str(inp), compiled, str(work / "w.json"), vk_path=vk, srs_path=srs)
        ezkl.prove(str(work / "w.json"), compiled, pk, str(work / "proof.json"), srs_path=srs)
        walls.append(time.perf_counter() - t)
    return summarize(walls)


def summarize(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}
