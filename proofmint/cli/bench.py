"""proofmint bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import JsonOpt, WorkspaceOpt, output, run, stderr


def bench_cmd(
    models: Annotated[list[str] | None, typer.Option(
        "--models", help="Zoo models (repeat the option) (default: mlp, lenet, mnist_mlp; --quick: mlp).")] = None,
    targets: Annotated[list[str] | None, typer.Option(
        "--targets", help="Calibration targets: balanced|resources|accuracy (default: balanced, resources).")] = None,
    visibility: Annotated[list[str] | None, typer.Option(
        "--visibility", help="Input visibility: public|hashed|private (default: public and hashed).")] = None,
    batch: Annotated[list[int] | None, typer.Option(
        "--batch", help="Batch sizes measured on the zoo CNN (default: 1, 4, 16; --quick: 1, 2).")] = None,
    repeat: Annotated[int | None, typer.Option(help="Proofs per configuration (default: 3; --quick: 1).")] = None,
    quick: Annotated[bool, typer.Option(help="A small run (wine MLP only) in under 5 minutes on 2 cores.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for results.json, results.md, plots.")] = Path("bench-out"),
    examples: Annotated[Path | None, typer.Option(
        help="Instead: a folder of models from outside the zoo (one folder each with network.onnx "
             "or model.onnx and one input.json, like EZKL's examples/onnx): proofmint's defaults vs "
             "bare ezkl on each.")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="With --examples: just these model folders; with --corpus: just these layers "
                       "(repeat the option).")] = None,
    corpus: Annotated[bool, typer.Option(
        help="Instead: every file of the corpus (each common torch layer exported at opsets 7, 9, 13, 18 "
             "with IR 3 and current IR, and by torch's default exporter) through proofmint, bare ezkl "
             "and JSTprove (`make jstprove`), in the same run.")] = False,
    flavour: Annotated[list[str] | None, typer.Option(
        "--flavour", help="With --corpus: just these export flavours (o7-ir3, o18, default, ...).")] = None,
    segmented: Annotated[bool, typer.Option(
        help="Instead: one circuit vs linked segments for each --only (zoo:NAME or a model folder, "
             "@segments=N or @max-key=SIZE; default zoo:lenet@segments=3): rows, keys, memory, one "
             "inference's time on 1 and 2 workers and on Ray with 2 nodes.")] = False,
    jstprove: Annotated[str | None, typer.Option(
        help="With --corpus: a Python 3.12 that has jstprove \\[default: .jstprove/bin/python].")] = None,
    node: Annotated[bool, typer.Option(
        help="Instead: the prover node (`proofmint serve`) vs one `proofmint prove` per input vs "
             "direct ezkl calls, on --repeat inputs (default 16), and a burst of 200 submissions.")] = False,
    rewrites: Annotated[bool, typer.Option(
        help="Instead: each ONNX rewrite's layer vs the nearest natively supported one "
             "(rows, logrows, prove time, error), compiled and proven in the same run.")] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
):
    """Benchmark compile, prove, verify, accuracy and gas, with same-run ratios against bare ezkl.

    Writes OUT/results.json, OUT/results.md and PNG plots. Each configuration is compiled cold
    in OUT/workspace (unless --workspace), proven --repeat times, deployed on an embedded anvil
    and minted once. Compare figures within one run: these machines are noisy.

    Example: proofmint bench --quick --out /tmp/b
             proofmint bench --models lenet --batch 1 --batch 16 --visibility hashed
             proofmint bench --examples ezkl/examples/onnx --only 1l_mlp --only lenet_5
             proofmint bench --node --repeat 16
             proofmint bench --rewrites
             proofmint bench --corpus --only gelu --flavour o7-ir3 --flavour default
             proofmint bench --segmented --only zoo:lenet@segments=3 --only ezkl/lenet_5@max-key=1G
    """
    import proofmint

    r = run(lambda: proofmint.bench(models=models, targets=targets, visibility=visibility, batch=batch,
                                    repeat=repeat, quick=quick, out=out, workspace=workspace,
                                    examples=examples, only=only, node=node, rewrites=rewrites,
                                    corpus=corpus, flavours=flavour, jstprove=jstprove, segmented=segmented))

    def human(d: dict) -> None:
        stderr.print(f"[green]bench done[/] in {d['results']['wall_s']:.0f} s")
        for f in d["files"]:
            print(f)

    output(r.to_dict(), json_, human)
