"""``proofmint bench --segmented``: one circuit against the same model as linked segments, in the
same run on the same machine.

Per model (a zoo model, or a folder with an ONNX file and an input.json): the single circuit
(where it fits) and the segmented one are compiled cold, then one inference is proven with 1
and 2 local workers and on Ray with 2 nodes (two raylets on this machine, ``ray.cluster_utils``,
one CPU each), and verified; each is then deployed on an embedded anvil and its proof minted
as one token. Reported: rows, logrows and proving-key bytes per circuit, the peak memory of
each prover process, wall time of the one inference, the end-to-end error, and the mint's gas
(with each segment's verifier alone). The time of ONE inference falling as workers rise is the
point of cutting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from proofmint import api, progress
from proofmint.circuits import segmented as segmented_mod
from proofmint.errors import ProofmintError, UsageError
from proofmint.models.onnx_model import model_file
from proofmint.prover.segmented import load_any
from proofmint.store import Workspace
from proofmint.verifier.chain.anvil import Anvil
from proofmint.verifier.chain.client import TX_GAS_CAP

DEFAULT = [("zoo:lenet", {"segments": 3})]


def _source(spec: str, out: Path) -> tuple[str, Path, Path]:
    """``zoo:NAME`` or ``zoo:NAME/SIZE`` (exported here) or a folder: its name, ONNX file and input."""
    if spec.startswith("zoo:"):
        name, _, size = spec[4:].partition("/")
        e = api.models_export(name, out=out / "models" / spec[4:], size=size or None)
        return spec[4:], Path(e.onnx), Path(e.input)
    folder = Path(spec)
    if not folder.is_dir():
        raise UsageError(f"--segmented takes zoo:NAME or a model folder, not {spec}")
    return folder.name, model_file(folder), folder / "input.json"


def _prove(circuit: str, inp: Path, out: Path, ws: Workspace, **kw) -> dict:
    t = time.perf_counter()
    r = api.prove(circuit, input=inp, out=out, workspace=ws, **kw)
    wall = time.perf_counter() - t
    if r.failures or not api.verify(r.bundles[0], workspace=ws).valid:
        raise ProofmintError(f"a proof of {circuit[:12]} failed: {r.failures}")
    # peak: one stats record a segment (or the one circuit); workers: as asked (none on Ray)
    return {"wall_s": round(wall, 2), "peak_rss_mb": [w.peak_rss_mb for w in r.workers],
            **({"workers": kw["workers"]} if "workers" in kw else {})}


def _mint(circuit: str, bundle: Path, ws: Workspace, rpc_url: str) -> dict:
    """Deploy the circuit and mint the proof: one transaction, one token, whatever the segments."""
    api.deploy(circuit, rpc_url=rpc_url, workspace=ws)
    m = api.mint(bundle, rpc_url=rpc_url, workspace=ws)
    return {"tokens": len(m.token_ids), "gas": m.gas_used["mint"],
            # in segment order, as mint adds them (sorting the keys put segment 10 before 2)
            "segment_verify_gas": [g for k, g in m.gas_used.items() if k.startswith("verify_segment_")]}


def _ray_two_nodes():
    """Two Ray nodes on this machine, one CPU each: one inference across 'machines'."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    return cluster


def one(spec: str, options: dict, out: Path, ws: Workspace, ray: bool, rpc_url: str) -> dict:
    options = dict(options)
    provers = options.pop("provers", (1, 2))
    ray = ray and len(provers) > 1
    name, onnx, inp = _source(spec, out)
    row: dict = {"model": name, "options": options}
    with progress.step(f"{name}: single circuit"):
        try:
            t = time.perf_counter()
            # over the budget the segments are held to (--max-key, else the machine's): refused in seconds
            single = api.compile(onnx, workspace=ws, segments=1,
                                 **{k: v for k, v in options.items() if k in ("max_key", "budget")})
            p = single.package
            row["single"] = {"compile_s": round(time.perf_counter() - t, 1), "logrows": p.logrows,
                             "rows": p.num_rows, "pk_bytes": p.pk_bytes,
                             "error": p.quantization["relative_max_error"]}
            row["single"]["prove"] = _prove(single.circuit_id, inp, out / f"{name}-single.json", ws)
            row["single"]["mint"] = _mint(single.circuit_id, out / f"{name}-single.json", ws, rpc_url)
        except ProofmintError as exc:
            row["single"] = {"refused": str(exc)[:300]}
    with progress.step(f"{name}: segmented"):
        t = time.perf_counter()
        seg = api.compile(onnx, workspace=ws, **options)
        spkg = seg.package
        if not isinstance(spkg, segmented_mod.SegmentedPackage):
            raise UsageError(f"{name} with {options} compiled as one circuit — ask for --segments")
        parts = spkg.packages(ws)
        row["segmented"] = {
            "compile_s": round(time.perf_counter() - t, 1), "segments": len(parts), "link": spkg.link,
            "logrows": [p.logrows for p in parts], "rows": [p.num_rows for p in parts],
            "pk_bytes": [p.pk_bytes for p in parts], "error": spkg.quantization["relative_max_error"],
            "why": spkg.plan["why"]}
        for workers in provers:
            row["segmented"][f"prove_{workers}"] = _prove(seg.circuit_id, inp, out / f"{name}-w{workers}.json", ws,
                                                          workers=workers)
        if not provers:  # compiled only: its proof takes longer than a session here
            row["segmented"]["key_estimate_bytes"] = [s["key_bytes"] for s in spkg.plan["segments"]]
            return row
        b = load_any(out / f"{name}-w{provers[-1]}.json")
        row["segmented"]["per_segment_prove_s"] = [s.timings.get("prove") for s in b.segments]
        if spkg.pk_on_demand:  # each proof made its key first: its seconds are in the wall time
            row["segmented"]["per_segment_key_s"] = [s.timings.get("key") for s in b.segments]
        row["segmented"]["mint"] = _mint(seg.circuit_id, out / f"{name}-w{provers[-1]}.json", ws, rpc_url)
        if ray:
            cluster = _ray_two_nodes()
            try:
                row["segmented"]["prove_ray2"] = _prove(seg.circuit_id, inp, out / f"{name}-ray.json", ws,
                                                        backend="ray", threads=1)
            finally:
                import ray as ray_mod

                ray_mod.shutdown()
                cluster.shutdown()
    return row


def parse(item: str) -> tuple[str, dict]:
    """``zoo:lenet`` (three segments), ``zoo:lenet@segments=4``, ``DIR@max-key=1G``, and after a
    comma ``workers=1`` to prove once, on one worker (a model whose one proof takes most of a
    session: the zoo GPT on 2 cores), ``workers=0`` to compile only (one whose proof takes more
    than a session: EZKL's mnist_gan on 2 cores) and ``budget=SECONDS`` for compile's scale search."""
    spec, _, rest = item.partition("@")
    options: dict = {}
    for option in filter(None, rest.split(",")):
        key, _, value = option.partition("=")
        if key == "segments" and value.isdigit():
            options["segments"] = int(value)
        elif key in ("max-key", "max_key") and value:
            options["max_key"] = value
        elif key == "workers" and value in ("0", "1"):
            options["provers"] = (1,) if value == "1" else ()
        elif key == "budget" and value.replace(".", "", 1).isdigit():
            options["budget"] = float(value)
        else:
            raise UsageError(f"--only {item}: write MODEL, MODEL@segments=N or MODEL@max-key=SIZE, "
                             "optionally followed by ,workers=1 (or 0: compile only) and ,budget=SECONDS "
                             "(the scale search's)")
    if "segments" not in options and "max_key" not in options:
        options["segments"] = 3
    return spec, options


def run(out: Path, ws: Workspace, models: list[str] | None, ray: bool = True) -> dict:
    specs = [parse(m) for m in models] if models else DEFAULT
    rows = []
    with progress.step("segmented", total=len(specs)), Anvil(ws.anvil_dir() / "bench-anvil.json") as anvil:
        for spec, options in specs:
            rows.append(one(spec, options, out, ws, ray, anvil.url))
            progress.advance("segmented")
            (out / "segmented.json").write_text(json.dumps({"segmented": rows}, indent=2) + "\n")
    return {"segmented": rows}


def _gas(circuit: dict) -> str:
    m = circuit.get("mint")
    if not m:
        return "—"
    alone = f" ({', '.join(f'{g:,}' for g in m['segment_verify_gas'])})" if m["segment_verify_gas"] else ""
    over = (" — over EIP-7825's per-transaction cap: not one transaction on an Osaka chain"
            if m["gas"] > TX_GAS_CAP else "")
    return f"{m['gas']:,}{alone}{over}"


def markdown(res: dict, machine: str) -> str:
    lines = ["# One circuit vs linked segments", "", machine, "",
             "One inference each; prove = wall time of `proofmint prove` (witness chain + proofs), "
             "verified; peak = each prover process's peak memory. Ray: two nodes on this machine "
             "(one CPU each), one segment per task. mint gas: the one transaction that verifies every "
             "proof and link and mints the token (in brackets: each segment's verifier alone).", "",
             "| model | circuit | logrows | rows | pk MB | error | prove 1 worker | prove 2 workers | Ray 2 nodes | peak MB | mint gas |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["segmented"]:
        s = r["single"]
        if "refused" in s:
            lines.append(f"| {r['model']} | one circuit | — | — | — | — | refused: {s['refused'][:80]} | | | | |")
        else:
            lines.append(f"| {r['model']} | one circuit | {s['logrows']} | {s['rows']:,} | {s['pk_bytes'] / 1e6:.0f} | "
                         f"{s['error']:.2%} | {s['prove']['wall_s']:.1f} | — | — | {max(s['prove']['peak_rss_mb']):.0f} | "
                         f"{_gas(s)} |")
        g = r["segmented"]
        wall = [f"{g[k]['wall_s']:.1f}" if k in g else "—" for k in ("prove_1", "prove_2", "prove_ray2")]
        peak = max((m for k in ("prove_1", "prove_2") if k in g for m in g[k]["peak_rss_mb"]), default=None)
        lines.append(
            f"| {r['model']} | {g['segments']} segments ({g['link']}) | {', '.join(map(str, g['logrows']))} | "
            f"{', '.join(f'{x:,}' for x in g['rows'])} | {', '.join(f'{x / 1e6:.0f}' for x in g['pk_bytes'])} | "
            f"{g['error']:.2%} | {' | '.join(wall)} | {'—' if peak is None else f'{peak:.0f}'} | {_gas(g)} |")
    lines += ["", "Cuts: " + "; ".join(f"{r['model']}: {r['segmented']['why']}" for r in res["segmented"]), ""]
    lines += [f"Keys made on demand ({r['model']}): each proof made its segment's key first, in "
              + ", ".join(f"{k:.0f}" for k in r["segmented"]["per_segment_key_s"]) + " s (in the wall time, "
              "not in each segment's prove seconds); the peak includes it." for r in res["segmented"] if r["segmented"].get("per_segment_key_s")]
    lines += [f"Compiled only ({r['model']}, compile {r['segmented']['compile_s']:,.0f} s): not proven in this run; "
              "keys estimated at plan time " + ", ".join(f"{k / 1e6:,.0f}" for k in r["segmented"]["key_estimate_bytes"])
              + " MB." for r in res["segmented"] if "key_estimate_bytes" in r["segmented"]]
    lines += [""] if lines[-1] else []
    return "\n".join(lines)
