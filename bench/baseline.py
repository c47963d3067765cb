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


def bare_ezkl(onnx: str, calibration: str, samples: np.ndarray, repeat: int) -> dict:
    import ezkl

    from proofmint.circuits import srs as srs_mod
    from proofmint.models.onnx_model import load_onnx
    from proofmint.prover import witness as witness_mod

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
    t = time.perf_counter()
    srs = srs_mod.development(k).path  # the machine's development SRS, as proofmint uses
    timings["srs"] = [time.perf_counter() - t]
    vk, pk = str(work / "vk.key"), str(work / "pk.key")
    timed("setup", ezkl.setup, compiled, vk, pk, srs_path=str(srs))
    sizes = load_onnx(onnx).input_sizes
    inp = witness_mod.write_input(work / "input.json", samples[0], sizes)
    for i in range(repeat):
        timed("witness", ezkl.gen_witness, str(inp), compiled, str(work / "w.json"), vk_path=vk,
              srs_path=str(srs))
        timed("prove", ezkl.prove, str(work / "w.json"), compiled, pk, str(work / "proof.json"),
              srs_path=str(srs))
    timed("verify", ezkl.verify, str(work / "proof.json"), settings, vk, srs_path=str(srs))

    # Agreement on the held-out set: the quantized circuit vs the float model (measurement only).
    model = load_onnx(onnx)
    ref, quant, failed = [], [], 0
    for x in samples:
        try:
            w = ezkl.gen_witness(str(witness_mod.write_input(inp, x, sizes)), compiled, str(work / "w.json"))
        except Exception:  # outside what ezkl calibrated on
            failed += 1
            continue
        quant.append(np.concatenate(witness_mod.decode_outputs(w, s["model_output_scales"])))
        ref.append(np.concatenate([o.ravel() for o in model.run(x)]))
    quality = witness_mod.agreement(ref, quant, "classification") if ref else {}
    return {
        "logrows": k, "num_rows": s["num_rows"], "input_scale": s["run_args"]["input_scale"],
        "pk_bytes": Path(pk).stat().st_size,
        "times": {n: summarize(v) for n, v in timings.items()},
        "argmax_agreement": quality.get("argmax_agreement"), "max_abs_error": quality.get("max_abs_error"),
        "relative_max_error": quality.get("relative_max_error"), "witness_failures": failed,
    }


def direct_prove(compiled: str, pk: str, vk: str, srs: str, x: np.ndarray, repeat: int) -> dict:
    import ezkl

    from proofmint.models.onnx_model import load_onnx
    from proofmint.prover.witness import write_input

    work = Path(tempfile.mkdtemp(prefix="direct-prove-"))
    inp = write_input(work / "input.json", x, load_onnx(Path(compiled).parent / "model.onnx").input_sizes)
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
