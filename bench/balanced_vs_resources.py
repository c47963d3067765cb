"""Same-run comparison of proofmint's `balanced` calibration with ezkl's `resources`.

For each zoo model: compile with both targets (keys made once per circuit), prove the same
input REPEAT times with each, and report logrows, rows, scale, argmax agreement / error on
the held-out calibration set, and median prove time; the ratio is taken within this run.

    .venv/bin/python bench/balanced_vs_resources.py [--repeat 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from proofmint.circuits.compile import compile as compile_model
from proofmint.models import export
from proofmint.prover import load_bundle, prove

MODELS = ("mlp", "lenet", "transformer", "generator")


def quality(q: dict) -> str:
    if "argmax_agreement" in q:
        return f"{q['argmax_agreement']:.1%} argmax"
    return f"{q['relative_max_error']:.2%} of range"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--workspace", help="reuse a workspace (its compiles are cache hits)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="proofmint-bench-"))
    ws = Path(args.workspace) if args.workspace else root / "ws"
    rows = []
    for name in args.models:
        e = export(name, root / name)
        for target in ("balanced", "resources"):
            t = time.perf_counter()
            c = compile_model(e.onnx, target=target, workspace=ws)
            cold = time.perf_counter() - t
            times = []
            for i in range(args.repeat):
                b = prove(c.circuit_id, e.input, root / f"{name}-{target}-{i}.json", workspace=ws).bundles[0]
                times.append(load_bundle(b).timings["prove"])
            p = c.package
            rows.append({"model": name, "target": target, "logrows": p.logrows, "rows": p.num_rows,
                         "scale": p.input_scale, "quality": quality(p.quantization),
                         "compile_s": round(cold, 1), "pk_mb": round(p.pk_bytes / 1e6, 1),
                         "prove_s": statistics.median(times), "prove_min_s": min(times),
                         "prove_max_s": max(times)})
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
               "python": platform.python_version(), "ezkl": "23.0.5",
               "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "all cores")}
    (out / "balanced_vs_resources.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = [f"# balanced vs ezkl resources (same run, {machine['cpu_count']} cores, {machine['platform']})", "",
             "| model | target | logrows | rows | scale | agreement / error | pk MB | prove s (median of "
             f"{args.repeat}) | ratio balanced/resources |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(x for x in rows if x["model"] == r["model"] and x["target"] == "resources")
        lines.append(f"| {r['model']} | {r['target']} | {r['logrows']} | {r['rows']} | {r['scale']} | "
                     f"{r['quality']} | {r['pk_mb']} | {r['prove_s']:.2f} ({r['prove_min_s']:.2f}-"
                     f"{r['prove_max_s']:.2f}) | {r['prove_s'] / base['prove_s']:.2f} |")
    (out / "balanced_vs_resources.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
