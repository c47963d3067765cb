"""models list, models export."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ._common import JsonOpt, output, run, stderr

app = typer.Typer(help="The model zoo: small models trained in seconds on data scikit-learn ships.",
                  no_args_is_help=True)


@app.command("list")
def list_cmd(json_: JsonOpt = False):
    """List the zoo's models.

    Example: proofmint models list
    """
    import proofmint

    models = [m.to_dict() for m in run(proofmint.models_list)]

    def human(r: dict) -> None:
        for m in r["models"]:
            shape = "x".join(map(str, m["input_shape"]))
            sizes = f" (--size {', '.join(m['sizes'])})" if m["sizes"] else ""
            print(f"{m['name']:<12} {m['task']:<15} {shape:<9} {m['description']}{sizes}")

    output({"models": models}, json_, human)


@app.command("export")
def export_cmd(
    name: Annotated[str, typer.Argument(help="Zoo model name (see `proofmint models list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for model.onnx, input.json, "
                                      "calibration.json and model.json.")],
    size: Annotated[str | None, typer.Option(help="One of the model's named sizes (the GPT: default, "
                                             "quick, small, tiny); `models list` shows them.")] = None,
    json_: JsonOpt = False,
):
    """Train a zoo model and export it to ONNX with a sample input and calibration set.

    Example: proofmint models export lenet --out m
    Example: proofmint models export gpt --size small --out gpt
    """
    import proofmint

    result = run(lambda: proofmint.models_export(name, out=out, size=size))

    def human(r: dict) -> None:
        stderr.print(f"[green]exported[/] {r['name']} ({r['dataset']}): {r['metric_name']} "
                     f"{r['metric']:.4f}, model id {r['model_id'][:16]}")
        print(r["onnx"])

    output(asdict(result), json_, human)
