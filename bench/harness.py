"""``proofmint bench``: proof times, sizes, accuracy and gas per model and setting, with
same-run ratios against bare ezkl (these machines are noisy: only a ratio measured in one
run on one machine counts; absolute figures are context).

Every configuration is compiled cold in the bench's own workspace, compiled again (the
cache hit), proven ``repeat`` times through ``proofmint prove``, verified, deployed on an
embedded anvil and minted once.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np

from proofmint import api, progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.samples import load_samples
from proofmint.errors import UsageError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import load_onnx
from proofmint.models.zoo import ZOO
from proofmint.prover import load_bundle
from proofmint.prover.backends import gpu_name
from proofmint.store import Workspace
from proofmint.verifier.chain.anvil import Anvil
from proofmint.verifier.evm import verifier_artifact
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.deploy import vka_for

from . import baseline, corpus as corpus_mod, segmented as segmented_mod, examples as examples_mod, node as node_mod, report, rewrites as rewrites_mod

FULL = {"models": ("mlp", "lenet", "mnist_mlp"), "targets": ("balanced", "resources"),
        "visibility": ("public", "hashed"), "batch": (1, 4, 16), "repeat": 3}
QUICK = {"models": ("mlp",), "targets": ("balanced",), "visibility": ("public", "hashed"),
         "batch": (1, 2), "repeat": 1}
BATCH_MODEL = "lenet"  # the zoo CNN: batch sizes are measured on it (else on the first model)


@dataclass
class BenchResult:
    out: str
    files: list[str]
    results: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def bench(*, models: list[str] | None = None, targets: list[str] | None = None,
          visibility: list[str] | None = None, batch: list[int] | None = None,
          repeat: int | None = None, quick: bool = False, out: str | Path = "bench-out",
          workspace: str | Path | None = None, examples: str | Path | None = None,
          only: list[str] | None = None, node: bool = False, rewrites: bool = False,
          corpus: bool = False, flavours: list[str] | None = None, jstprove: str | None = None,
          segmented: bool = False) -> BenchResult:
    """Measure the pipeline per model and setting and write results.json, results.md, plots.

    ``examples``: instead, a folder of models from outside the zoo (one folder each with an
    ONNX file and an input.json), proofmint's defaults vs bare ezkl on each (``only``: some
    of them); writes examples.json and examples.md. ``node``: instead, the prover node vs one
    ``proofmint prove`` per input vs direct ezkl calls (``repeat`` inputs, 16 by default), and
    a burst of 200 submissions; writes node.json and node.md. ``rewrites``: instead, each ONNX
    rewrite's layer vs the nearest natively supported one (rows, logrows, prove time, error);
    writes rewrites.json and rewrites.md. ``corpus``: instead, every file of the corpus (each
    torch layer as other exporters write it; ``only``: some layers, ``flavours``: some export
    flavours) through proofmint, bare ezkl and, where ``jstprove`` names its Python (or
    ``make jstprove`` made one), JSTprove on the opset-18 files; writes corpus.json and corpus.md.
    ``segmented``: instead, one circuit vs linked segments for each of ``only`` (``zoo:NAME`` or a
    model folder, ``@segments=N`` or ``@max-key=SIZE``); writes segmented.json and segmented.md."""
    if corpus:
        return bench_corpus(out=out, workspace=workspace, only=only, flavours=flavours, jstprove=jstprove)
    if segmented:
        return bench_segmented(out=out, workspace=workspace, only=only)
    if rewrites:
        return bench_rewrites(out=out, workspace=workspace)
    if node:
        return bench_node(out=out, workspace=workspace, repeat=repeat)
    if examples is not None:
        return bench_examples(examples, out=out, workspace=workspace, only=only, repeat=repeat)
    return bench_zoo(models=models, targets=targets, visibility=visibility, batch=batch, repeat=repeat,
                     quick=quick, out=out, workspace=workspace)


def _side_run(out: str | Path, workspace: str | Path | None, stem: str, run, markdown) -> BenchResult:
    """A bench mode beside the zoo's: ``run(out, ws)`` -> results; writes STEM.json and
    STEM.md (``markdown(results, machine line)``), with the machine and the wall time."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    res = run(out, Workspace.resolve(workspace or out / "workspace"))
    m = machine()
    res |= {"machine": m, "wall_s": round(time.perf_counter() - started, 1)}
    files = [out / f"{stem}.json", out / f"{stem}.md"]
    files[0].write_text(json.dumps(res, indent=2) + "\n")
    files[1].write_text(markdown(res, machine_line(m, res["wall_s"])))
    return BenchResult(str(out), [str(f) for f in files], res)


def bench_corpus(*, out: str | Path, workspace: str | Path | None = None, only: list[str] | None = None,
                 flavours: list[str] | None = None, jstprove: str | None = None) -> BenchResult:
    """Every file of the corpus through proofmint, bare ezkl and JSTprove (opset-18 files)."""
    return _side_run(out, workspace, "corpus",
                     lambda o, ws: corpus_mod.run(o, ws, only, flavours, corpus_mod.jstprove_python(jstprove), ["o18"]),
                     corpus_mod.markdown)


def bench_segmented(*, out: str | Path, workspace: str | Path | None = None,
                    only: list[str] | None = None) -> BenchResult:
    """One circuit vs linked segments: rows, keys, memory, one inference's time on 1 and 2
    workers and on Ray with 2 nodes."""
    return _side_run(out, workspace, "segmented", lambda o, ws: segmented_mod.run(o, ws, only), segmented_mod.markdown)


def bench_rewrites(*, out: str | Path, workspace: str | Path | None = None) -> BenchResult:
    """Each ONNX rewrite's layer vs the nearest natively supported one."""
    return _side_run(out, workspace, "rewrites", lambda o, ws: {"rewrites": rewrites_mod.run(o, ws)},
                     lambda res, line: rewrites_mod.markdown(res["rewrites"], line))


def bench_node(*, out: str | Path, workspace: str | Path | None = None, repeat: int | None = None) -> BenchResult:
    """The prover node vs one ``proofmint prove`` per input vs direct ezkl calls."""
    return _side_run(out, workspace, "node", lambda o, ws: node_mod.run(o, repeat or 16, ws), node_mod.markdown)


def bench_examples(examples: str | Path, *, out: str | Path, workspace: str | Path | None = None,
                   only: list[str] | None = None, repeat: int | None = None) -> BenchResult:
    """Models from outside the zoo, proofmint's defaults vs bare ezkl on each."""
    return _side_run(out, workspace, "examples",
                     lambda o, ws: examples_mod.run(Path(examples), o, only, repeat or 1, ws),
                     lambda res, line: examples_mod.markdown(res["examples"], line))


def _config(models, targets, visibility, batch, repeat, quick) -> dict:
    cfg = dict(QUICK if quick else FULL)
    for key, value in (("models", models), ("targets", targets), ("visibility", visibility),
                       ("batch", batch), ("repeat", repeat)):
        if value or (key == "repeat" and value is not None):  # an empty list means the default
            cfg[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    unknown = [m for m in cfg["models"] if m not in ZOO]
    if unknown:
        raise UsageError(f"unknown bench model(s) {', '.join(unknown)} — choose from {', '.join(ZOO)}")
    if cfg["repeat"] < 1 or any(b < 1 for b in cfg["batch"]):
        raise UsageError("--repeat and --batch sizes must be >= 1")
    return cfg


def bench_zoo(*, models: list[str] | None = None, targets: list[str] | None = None,
              visibility: list[str] | None = None, batch: list[int] | None = None,
              repeat: int | None = None, quick: bool = False, out: str | Path = "bench-out",
              workspace: str | Path | None = None) -> BenchResult:
    """Zoo models per target, visibility and batch size, with the same-run baselines; writes
    results.json, results.md and plots."""
    cfg = _config(models, targets, visibility, batch, repeat, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace.resolve(workspace or out / "workspace")
    started = time.perf_counter()
    results: dict = {"machine": machine(), "config": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in cfg.items()} | {"quick": quick},
                     "models": {}, "runs": [], "baselines": {}, "batch": []}
    with Anvil(ws.anvil_dir() / "bench-anvil.json") as anvil:
        for name in cfg["models"]:
            with progress.step(f"{name}: export + onnxruntime"):
                e = api.models_export(name, out=out / "models" / name)
                samples = load_samples(Path(e.calibration), load_onnx(e.onnx))
                results["models"][name] = {"input_shape": e.input_shape, "dataset": e.dataset,
                                           e.metric_name: e.metric,
                                           "onnxruntime_inference_s": ort_time(e.onnx, samples)}
            for target in cfg["targets"]:
                for vis in cfg["visibility"]:
                    results["runs"].append(measure(e, samples, target, vis, 1, cfg["repeat"], ws,
                                                   anvil.url, offset=len(results["runs"])))
            results["baselines"][name] = baselines(e, samples, results["runs"], cfg, ws)
        cnn = BATCH_MODEL if BATCH_MODEL in cfg["models"] else cfg["models"][0]
        vis = "hashed" if "hashed" in cfg["visibility"] else cfg["visibility"][0]
        e = api.models_export(cnn, out=out / "models" / cnn)
        samples = load_samples(Path(e.calibration), load_onnx(e.onnx))
        for b in cfg["batch"]:
            same = [r for r in results["runs"] if r["model"] == cnn and r["target"] == cfg["targets"][0]
                    and r["visibility"] == vis and r["batch"] == b]
            results["batch"].append(same[0] if same else
                                    measure(e, samples, cfg["targets"][0], vis, b, 1, ws, anvil.url,
                                            offset=len(results["batch"])))
    results["ratios"] = ratios(results, cfg)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    files = report.write(results, out)
    return BenchResult(str(out), [str(f) for f in files], results)


def machine_line(m: dict, wall_s: float) -> str:
    return (f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, GPU: {m['gpu'] or 'none'}; "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {wall_s:.0f} s in all.")


def machine() -> dict:
    import psutil

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "gpu": gpu_name(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": {p: version(p) for p in ("ezkl", "torch", "onnxruntime", "web3")},
            "prover_threads": os.environ.get("RAYON_NUM_THREADS", "all cores")}


def ort_time(onnx: str, samples: np.ndarray, runs: int = 200) -> float:
    """Median onnxruntime time of one inference (one thread, as the circuit's reference)."""
    model = load_onnx(onnx)
    model.run(samples[0])  # session creation is not inference
    times = []
    for i in range(runs):
        t = time.perf_counter()
        model.run(samples[i % len(samples)])
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(e, samples: np.ndarray, target: str, vis: str, batch: int, repeat: int,
            ws: Workspace, rpc_url: str, offset: int = 0) -> dict:
    """One configuration. ``offset`` picks other held-out inputs per configuration, so two
    settings that choose one circuit never mint the same inference twice."""
    label = f"{e.name} {target} {vis} batch {batch}"
    with progress.step(label):
        cold = api.compile(e.onnx, target=target, input_visibility=vis, batch=batch, workspace=ws)
        hit = api.compile(e.onnx, target=target, input_visibility=vis, batch=batch, workspace=ws)
        pkg = cold.package
        work = ws.bench_dir(pkg.circuit_id[:16])
        walls, witness, proving, verifying, rss, bundles = [], [], [], [], [], []
        for r in range(repeat):
            start = (offset * 5 + r * batch) % len(samples)
            items = np.concatenate([samples, samples])[start:start + batch]
            stream = work / f"inputs-{r}.jsonl"
            stream.write_text("\n".join(json.dumps({"input_data": [x.ravel().tolist()]}) for x in items))
            t = time.perf_counter()
            res = api.prove(pkg.circuit_id, input=stream, out=work / f"proof-{r}.json", workspace=ws)
            walls.append(time.perf_counter() - t)
            b = load_bundle(res.bundles[0])
            proof_bytes = len(b.ezkl_proof["proof"])
            witness.append(b.timings["witness"])
            proving.append(b.timings["prove"])
            rss.append(max(w.peak_rss_mb for w in res.workers))
            t = time.perf_counter()
            if not api.verify(res.bundles[0], workspace=ws).valid:
                raise UsageError(f"{label}: a fresh proof did not verify")
            verifying.append(time.perf_counter() - t)
            bundles.append(res.bundles[0])
        gas = chain_gas(pkg, bundles[0], ws, rpc_url)
    q = pkg.quantization
    return {
        "model": e.name, "target": target, "visibility": vis, "batch": batch,
        "circuit_id": pkg.circuit_id, "logrows": pkg.logrows, "num_rows": pkg.num_rows,
        "input_scale": pkg.input_scale, "instances": pkg.layout.instance_count,
        "layout": pkg.calibration_report.chosen.get("layout"),
        "compile_s": cold.timings, "compile_cold_s": cold.timings["total"] if not cold.cached else None,
        "compile_hit_s": hit.timings["total"],
        "witness_s": baseline.summarize(witness), "prove_s": baseline.summarize(proving),
        "prove_wall_s": baseline.summarize(walls), "verify_s": baseline.summarize(verifying),
        "peak_rss_mb": max(rss), "pk_bytes": pkg.pk_bytes, "vk_bytes": pkg.vk_bytes,
        "proof_bytes": proof_bytes,
        "argmax_agreement": q.get("argmax_agreement"), "max_abs_error": q.get("max_abs_error"),
        "relative_max_error": q.get("relative_max_error"), "heldout_samples": q.get("samples"), **gas,
    }


def chain_gas(pkg, bundle_path: str, ws: Workspace, rpc_url: str) -> dict:
    """verifyProof gas (the EZKL verifier alone) and the full mint of the proof."""
    d = api.deploy(pkg.circuit_id, rpc_url=rpc_url, workspace=ws)
    bundle = load_bundle(bundle_path)
    art = verifier_artifact(pkg, reusable=d.verifier_kind == "reusable")
    with connect(rpc_url=rpc_url, workspace=ws) as c:
        verifier = c.w3.eth.contract(address=d.verifier, abi=art["abi"])
        args = [bundle.proof_bytes, bundle.instance_words]
        if d.verifier_kind == "reusable":
            args.append(vka_for(pkg, {"kind": "reusable"}))
        verify_gas = verifier.functions.verifyProof(*args).estimate_gas()
    m = api.mint(bundle_path, rpc_url=rpc_url, workspace=ws)
    return {"verifier": d.verifier_kind, "verifier_runtime_bytes": d.verifier_runtime_bytes,
            "verify_gas": verify_gas, "mint_gas": m.gas_used["mint"], "tokens": len(m.token_ids)}


def baselines(e, samples: np.ndarray, runs: list[dict], cfg: dict, ws: Workspace) -> dict:
    """Bare ezkl on the same model, and a direct ezkl.prove on proofmint's first circuit."""
    ours = next(r for r in runs if r["model"] == e.name)
    with progress.step(f"{e.name}: bare ezkl (resources, default settings)"):
        task = "classification" if ZOO[e.name].task == "classification" else "regression"
        bare = run_in_child(baseline.bare_ezkl, e.onnx, e.calibration, samples, cfg["repeat"],
                            task, what="bare ezkl")
    pkg = package_mod.load(ws, ours["circuit_id"])
    with progress.step(f"{e.name}: direct ezkl.prove on proofmint's circuit"):
        with package_mod.proving_key(pkg) as pk:
            direct = run_in_child(baseline.direct_prove, str(pkg.compiled), str(pk), str(pkg.vk),
                                  str(pkg.srs), samples[0], cfg["repeat"], what="direct prove")
    return {"bare_ezkl": bare, "direct_prove_s": direct, "compared_with": {
        k: ours[k] for k in ("target", "visibility", "circuit_id")}}


def fidelity(r: dict) -> str:
    """Argmax agreement for a classifier, the error as a share of the output span otherwise."""
    if r.get("argmax_agreement") is not None:
        return f"argmax {r['argmax_agreement']:.1%}"
    return "—" if r.get("relative_max_error") is None else f"error {r['relative_max_error']:.2%} of span"


def ratios(results: dict, cfg: dict) -> dict:
    """Every ratio the report is read against, each from figures of this one run."""
    out: dict = {"per_model": {}, "batch": _batch_ratios(results["batch"]), "gas_hashed_vs_public": {}}
    for name, base in results["baselines"].items():
        runs = [r for r in results["runs"] if r["model"] == name]
        out["per_model"][name] = _model_ratios(runs, base, results["models"][name]["onnxruntime_inference_s"])
        for target in cfg["targets"]:
            pub = [r for r in runs if r["target"] == target and r["visibility"] == "public"]
            hashed = [r for r in runs if r["target"] == target and r["visibility"] == "hashed"]
            if pub and hashed:
                out["gas_hashed_vs_public"][f"{name} {target}"] = {
                    "verify": round(hashed[0]["verify_gas"] / pub[0]["verify_gas"], 3),
                    "mint": round(hashed[0]["mint_gas"] / pub[0]["mint_gas"], 3)}
    return out


def _model_ratios(runs: list[dict], base: dict, ort: float) -> dict:
    bal = [r for r in runs if r["target"] == "balanced"] or runs
    first = next(r for r in runs if r["circuit_id"] == base["compared_with"]["circuit_id"])
    bare = base["bare_ezkl"]
    return {
        "prove_vs_bare_ezkl": round(min(r["prove_s"]["median"] for r in bal) / bare["times"]["prove"]["median"], 3),
        "fidelity_ours_vs_bare": [fidelity(max(bal, key=lambda r: r["relative_max_error"] or 0)), fidelity(bare)],
        "prove_overhead": round(first["prove_wall_s"]["median"] / base["direct_prove_s"]["median"] - 1, 3),
        "prove_core_overhead": round((first["witness_s"]["median"] + first["prove_s"]["median"])
                                     / base["direct_prove_s"]["median"] - 1, 3),
        "proof_overhead_factor": round(first["prove_s"]["median"] / ort, 1),
        "compile_vs_bare_ezkl": min((round(r["compile_cold_s"] / baseline.bare_compile_s(bare), 3)
                                     for r in bal if r["compile_cold_s"]), default=None),
        "cache_hit_speedup": min((round(r["compile_cold_s"] / max(r["compile_hit_s"], 1e-6), 1)
                                  for r in runs if r["compile_cold_s"]), default=None),
    }


def _batch_ratios(batch: list[dict]) -> list[dict]:
    single = next((r for r in batch if r["batch"] == 1), None)
    return [{"batch": r["batch"],
             "prove_per_inference_vs_single": round(r["prove_s"]["median"] / r["batch"] / single["prove_s"]["median"], 3),
             "verify_gas_per_inference_vs_single": round(r["verify_gas"] / r["batch"] / single["verify_gas"], 3),
             "mint_gas_per_inference_vs_single": round(r["mint_gas"] / r["batch"] / single["mint_gas"], 3)}
            for r in batch if single is not None and r["batch"] != 1]
