"""Same-run baselines with no proofmint code in the measured path.

- ``bare_ezkl``: ezkl's own recipe (gen_settings with default run args, calibrate_settings
  with ``resources``, compile_circuit, setup, gen_witness, prove), timed call by call through
  the ezkl layer (which only adds keyword arguments and error mapping around each call).
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

from proofmint import ezkl_layer
from proofmint.errors import ProofmintError


def bare_ezkl(onnx: str, calibration: str, samples: np.ndarray, repeat: int,
              task: str = "classification") -> dict:
    from proofmint.circuits import srs as srs_mod
    from proofmint.circuits.fidelity import agreement
    from proofmint.models.onnx_model import load_onnx

    with tempfile.TemporaryDirectory(prefix="bare-ezkl-") as tmp:  # its keys are hundreds of MB: never left behind
        work = Path(tmp)
        timings: dict = {}

        def timed(name: str, fn, *args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            timings.setdefault(name, []).append(time.perf_counter() - t)
            return out

        settings, compiled = work / "settings.json", work / "model.compiled"
        timed("gen_settings", ezkl_layer.gen_settings, Path(onnx), settings)  # ezkl's default run args
        timed("calibrate", ezkl_layer.calibrate_settings, Path(calibration), Path(onnx), settings, "resources")
        timed("compile_circuit", ezkl_layer.compile_circuit, Path(onnx), compiled, settings)
        s = json.loads(settings.read_text())
        k = s["run_args"]["logrows"]
        t = time.perf_counter()
        srs = Path(srs_mod.development(k).path)  # the machine's development SRS, as proofmint uses
        timings["srs"] = [time.perf_counter() - t]
        vk, pk = work / "vk.key", work / "pk.key"
        timed("setup", ezkl_layer.setup, compiled, vk, pk, srs)
        model = load_onnx(onnx)
        inp = ezkl_layer.write_input(work / "input.json", samples[0], model.input_sizes)
        for _ in range(repeat):
            timed("witness", ezkl_layer.gen_witness, inp, compiled, work / "w.json", vk=vk, srs=srs)
            timed("prove", ezkl_layer.prove, work / "w.json", compiled, pk, work / "proof.json", srs)
        timed("verify", ezkl_layer.verify, work / "proof.json", settings, vk, srs)

        # Agreement on the held-out set: the quantized circuit vs the float model (measurement only).
        ref, quant, failed = [], [], 0
        for x in samples:
            try:
                w = ezkl_layer.gen_witness(ezkl_layer.write_input(inp, x, model.input_sizes), compiled,
                                           work / "w.json")
            except ProofmintError:  # outside what ezkl calibrated on
                failed += 1
                continue
            quant.append(np.concatenate(ezkl_layer.decode_outputs(w, s["model_output_scales"])))
            ref.append(np.concatenate([o.ravel() for o in model.run(x)]))
        quality = agreement(ref, quant, task) if ref else {}
        return {
            "logrows": k, "num_rows": s["num_rows"], "input_scale": s["run_args"]["input_scale"],
            "pk_bytes": pk.stat().st_size,
            "times": {n: summarize(v) for n, v in timings.items()},
            "argmax_agreement": quality.get("argmax_agreement"), "max_abs_error": quality.get("max_abs_error"),
            "relative_max_error": quality.get("relative_max_error"), "witness_failures": failed,
        }


def bare_compile_s(bare: dict) -> float:
    """Bare ezkl's cold compile with the SRS cached, as proofmint's is: settings, calibration,
    circuit, keys."""
    return sum(bare["times"][k]["median"] for k in ("gen_settings", "calibrate", "compile_circuit", "setup"))


def direct_prove(compiled: str, pk: str, vk: str, srs: str, x: np.ndarray, repeat: int) -> dict:
    from proofmint.models.onnx_model import load_onnx

    work = Path(tempfile.mkdtemp(prefix="direct-prove-"))
    inp = ezkl_layer.write_input(work / "input.json", x,
                                 load_onnx(Path(compiled).parent / "model.onnx").input_sizes)
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        ezkl_layer.gen_witness(inp, Path(compiled), work / "w.json", vk=Path(vk), srs=Path(srs))
        ezkl_layer.prove(work / "w.json", Path(compiled), Path(pk), work / "proof.json", Path(srs))
        walls.append(time.perf_counter() - t)
    return summarize(walls)


def summarize(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}
