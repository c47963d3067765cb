"""compile, prove, verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from proofmint.circuits.calibrate import DEFAULT_BUDGET_S, TARGETS
from proofmint.circuits.fidelity import DEFAULT_TOLERANCE, quality_line

from ._common import JsonOpt, WorkspaceOpt, output, run, stderr


def _srs_line(warning: str | None) -> None:
    if warning:
        stderr.print(f"[yellow]SRS: {warning}[/] — pass --srs FILE (a ceremony SRS) for real use")


def compile_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX file (a zoo export or your own), or a folder holding one "
                                   "(model.onnx, or its only .onnx file) with its input.json.")],
    calibration: Annotated[Path | None, typer.Option(
        help="ezkl input JSON with one or more held-out inputs back to back "
             "\\[default: calibration.json or input.json beside the model].")] = None,
    target: Annotated[str, typer.Option(
        help=f"Calibration target: {'|'.join(TARGETS)}. 'balanced' keeps the decoded outputs within "
             "--tolerance of the float model's (and argmax for classifiers) on held-out samples, "
             "then picks the fastest circuit; 'resources'/'accuracy' are ezkl's own.")] = "balanced",
    tolerance: Annotated[float, typer.Option(
        help="Fidelity goal of 'balanced': max error as a fraction of the float outputs' span.")
    ] = DEFAULT_TOLERANCE,
    input_visibility: Annotated[str, typer.Option(help="public|hashed|private")] = "public",
    output_visibility: Annotated[str, typer.Option(help="public|hashed")] = "public",
    param_visibility: Annotated[str, typer.Option(help="fixed|hashed")] = "fixed",
    srs: Annotated[Path | None, typer.Option(
        help="SRS file (e.g. from a ceremony) \\[default: a cached development SRS, NOT secure].")] = None,
    workspace: WorkspaceOpt = None,
    batch: Annotated[int, typer.Option(
        help="Inferences per proof. N > 1 compiles a batch circuit: `prove` packs N inputs per "
             "proof (padding the last) and `mint` mints one token per real inference in one "
             "transaction. A graph with a fixed batch of 1 is batched as N copies side by side.")] = 1,
    budget: Annotated[float, typer.Option(
        help="Seconds the 'balanced' search may spend calibrating and measuring; a calibration "
             "that could take a tenth of what is left runs where the budget's end stops it.")
    ] = DEFAULT_BUDGET_S,
    segments: Annotated[int | None, typer.Option(
        help="Prove one inference as this many linked segment proofs (cut where the largest "
             "segment is smallest); 1: one circuit, refused in seconds if its key is over --max-key "
             "\\[default: one circuit, or as few segments as --max-key needs].")] = None,
    max_key: Annotated[str | None, typer.Option(
        "--max-key", help="The largest proving key one circuit may need (bytes, or 256M, 4G); a model "
             "over it is cut into linked segments \\[default: 40 % of the memory to plan for: a prover "
             "takes 2-2.3x its key].")] = None,
    link: Annotated[str, typer.Option(
        help="How a segment's outputs bind the next one's inputs: hashed (a Poseidon hash both "
             "proofs make public; the values stay private) | public.")] = "hashed",
    keys: Annotated[str, typer.Option(
        help="Proving keys: kept beside each circuit | on-demand (each proof makes its key first "
             "and deletes it after: disk for one key, a setup's time per proof) | auto (kept, unless a "
             "segmented model's keys together would not fit the workspace's disk).")] = "auto",
    input_from: Annotated[str | None, typer.Option(
        "--input-from", help="Circuit id whose output this model takes as its input (an upsampler of "
             "a generator's image), or a named slice of it: ID:OUTPUT (one of its output tensors), "
             "ID:OUTPUT[A:B] or ID[A:B] (values A to B-1, flattened; public outputs only). The input is "
             "read at that output's scale and visibility, so a token can prove it was made from a token "
             "of that model.")] = None,
    json_: JsonOpt = False,
):
    """Compile an ONNX model into an EZKL circuit with proving and verifying keys.

    Example: proofmint compile m/model.onnx --target balanced
             proofmint compile m/model.onnx --batch 16 --input-visibility hashed
             proofmint compile gpt/ --max-key 4G          # linked segments, each key <= 4 GB
             proofmint compile gpt/ --keys on-demand      # no keys kept: each proof makes its own
             proofmint compile up/ --input-from 09a4e304   # its input is that circuit's output
    """
    import proofmint

    result = run(lambda: proofmint.compile(
        model, calibration=calibration, target=target, input_visibility=input_visibility,
        output_visibility=output_visibility, param_visibility=param_visibility, srs=srs,
        workspace=workspace, batch=batch, tolerance=tolerance, budget=budget, segments=segments,
        max_key=max_key, link=link, input_from=input_from, keys=keys))

    def human(r: dict) -> None:
        p = r["package"]
        if "segments" in p:
            return _segmented_summary(r)
        q = p["quantization"]
        stderr.print(f"{'cache hit: ' if r['cached'] else ''}circuit [bold]{r['circuit_id']}[/]")
        stderr.print(f"  model id      {r['model_id']}")
        stderr.print(f"  logrows       {p['logrows']}  (rows used {p['num_rows']})")
        if p["batch_size"] > 1:
            stderr.print(f"  batch         {p['batch_size']} inferences per proof")
        stderr.print(f"  scales        input {p['input_scale']}, params {p['param_scale']}, "
                     f"outputs {p['output_scales']}")
        stderr.print(f"  lookup range  {p['lookup_range']}")
        lo, hi = p["input_range"]
        domain = p["calibration_report"].get("samples", {}).get("domain")
        stderr.print(f"  accepts       inputs in [{lo:.4g}, {hi:.4g}]"
                     + (f": samples drawn from {domain}" if domain else ""))
        if q:
            stderr.print(f"  fidelity      {quality_line(q)} on {q['samples']} held-out samples "
                         f"(reference: {q.get('reference', 'onnxruntime')})")
        rep = p["calibration_report"]
        if rep.get("goal"):
            stderr.print(f"  goal          {rep['goal']}")
        if rep.get("samples", {}).get("built"):
            stderr.print(f"  samples       {rep['samples']['given']} given, "
                         f"{rep['samples']['calibration'] + rep['samples']['heldout']} used")
        for rw in rep.get("rewrites", []):
            rows = "" if rw.get("rows") is None else f" (+{rw['rows']:,} rows)" if rw["rows"] else " (no rows)"
            stderr.print(f"  rewrote       {rw['op']} '{rw['node']}' as {rw['into']}{rows}")
        layout = rep.get("chosen", {}).get("layout")
        if layout:
            stderr.print(f"  layout        range checks {layout['decomp_base']}^{layout['decomp_legs']}, "
                         f"{layout['num_inner_cols']} columns"
                         + (f", search {rep['search_seconds']:.0f} s" if "search_seconds" in rep else ""))
        stderr.print(f"  keys          pk {p['pk_bytes'] / 1e6:.1f} MB, vk {p['vk_bytes'] / 1e3:.1f} KB")
        stderr.print("  time          " + ", ".join(f"{k} {v:.2f} s" for k, v in r["timings"].items()
                                                      if isinstance(v, float)))
        _srs_line(r["srs_warning"])
        print(r["circuit_id"])

    output(result.to_dict(), json_, human)


def _segmented_summary(r: dict) -> None:
    p = r["package"]
    stderr.print(f"{'cache hit: ' if r['cached'] else ''}segmented circuit [bold]{r['circuit_id']}[/]")
    stderr.print(f"  model id      {r['model_id']}")
    stderr.print(f"  segments      {len(p['segments'])}, linked by {p['link']} cut tensors — {p['plan']['why']}")
    for s, cid in zip(p["plan"]["segments"], p["segments"]):
        carried = f", then {s['carried_values']} values cross" if s["outputs"] else ""
        stderr.print(f"    {s['index']}: {cid[:16]}  {s['nodes']} nodes, {s['rows']:,} rows at ezkl's defaults{carried}")
    stderr.print(f"  scale         {p['scale']} in every segment (a hash links identical values)")
    if p.get("pk_on_demand"):
        stderr.print("  keys          made by each proof, then deleted (they would not all fit the disk, or --keys on-demand)")
    lo, hi = p["input_range"]
    stderr.print(f"  accepts       inputs in [{lo:.4g}, {hi:.4g}]")
    q = p["quantization"]
    stderr.print(f"  fidelity      {quality_line(q)} end to end on {q['samples']} held-out samples "
                 f"(reference: {q.get('reference', 'onnxruntime')})")
    stderr.print("  time          " + ", ".join(f"{k} {v:.2f} s" for k, v in r["timings"].items()
                                                  if isinstance(v, float)))
    _srs_line(r["srs_warning"])
    print(r["circuit_id"])


def prove_cmd(
    circuit: Annotated[str, typer.Argument(help="Circuit id (or 8+ character prefix), or an ONNX file.")],
    input: Annotated[Path, typer.Option(
        "--input", "-i", help="ezkl JSON {\"input_data\": [[...]]}, .npy, or .jsonl (one input a line).")],
    out: Annotated[Path | None, typer.Option(
        help="Bundle path \\[default: proof.json]; several inputs give STEM-0000.json, ...")] = None,
    threads: Annotated[int | None, typer.Option(
        help="Prover threads per worker \\[default: all cores divided among the workers].")] = None,
    workers: Annotated[int, typer.Option(
        help="Parallel prover processes on this machine. Each holds the circuit in memory: "
             "pick K so K x the peak memory reported per worker fits in RAM.")] = 1,
    backend: Annotated[str, typer.Option(help="local | ray")] = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address (e.g. ray://head:10001) \\[default: a local Ray instance].")] = None,
    device: Annotated[str, typer.Option(
        help="cpu | gpu. gpu needs an ezkl built with `--features gpu-accelerated` (ICICLE), "
             "ICICLE_BACKEND_INSTALL_DIR set to an ICICLE CUDA backend, and an NVIDIA GPU; the PyPI "
             "wheels are CPU-only, so it is refused with what is missing. Untested.")] = "cpu",
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
):
    """Prove inferences and write one proof bundle per input (in input order).

    Example: proofmint prove 09a4e304 --input m/input.json --out p.json
    Many inputs: proofmint prove 09a4e304 --input stream.jsonl --out p.json --workers 2
    """
    import proofmint

    result = run(lambda: proofmint.prove(circuit, input=input, out=out, workspace=workspace, threads=threads,
                                         workers=workers, backend=backend, address=address, device=device))

    def human(r: dict) -> None:
        batches = {b["bundle"]: b for b in r["batches"]}
        for path in r["bundles"]:
            b = batches.get(path)
            held = (f" (inputs {b['inputs'][0]}-{b['inputs'][-1]}"
                    + (f", {b['padding']} padding)" if b["padding"] else ")")) if b else ""
            stderr.print(f"[green]proved[/] {path}{held}")
        for f in r["failures"]:
            stderr.print(f"[red]failed[/] input {f['index']}: {f['error']}")
        for w in r["workers"]:
            stderr.print(f"  {r['backend']} worker {w['worker']}: {w['inputs']} input(s), "
                         f"{w['threads']} thread(s), peak memory {w['peak_rss_mb']:.0f} MB")
        _srs_line(r["srs_warning"])

    output(result.to_dict(), json_, human)
    if result.failures:
        raise typer.Exit(1)


def verify_cmd(
    proof: Annotated[Path, typer.Argument(help="Proof bundle written by `proofmint prove`.")],
    circuit: Annotated[str | None, typer.Option(
        help="Check against this circuit's key instead of the one the bundle names.")] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
):
    """Verify a proof bundle locally. Exit 0 valid, 1 invalid, 2 usage or environment error.

    Example: proofmint verify p.json
    """
    import proofmint

    result = run(lambda: proofmint.verify(proof, circuit=circuit, workspace=workspace))

    def human(r: dict) -> None:
        if r["valid"]:
            stderr.print(f"[green]valid[/] proof for circuit {r['circuit_id'][:16]}")
        else:
            stderr.print(f"[red]invalid[/]: {r['reason']}")
        _srs_line(r["srs_warning"])

    output(result.to_dict(), json_, human)
    raise typer.Exit(0 if result.valid else 1)
