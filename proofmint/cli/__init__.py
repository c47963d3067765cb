"""The `proofmint` command: a thin layer over the Python API (one function per command)."""

from __future__ import annotations

import typer

from ..jobs import unwind_on_sigterm
from . import bench, models, node, onchain, pipeline

app = typer.Typer(
    name="proofmint",
    help="Verifiable AI inference: prove ONNX model runs with EZKL, verify them on-chain, and "
         "mint verified outputs as provenance tokens.\n\n"
         "Flow: models export -> compile -> prove -> verify (-> deploy -> mint -> verify-asset).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.command("compile")(pipeline.compile_cmd)
app.command("prove")(pipeline.prove_cmd)
app.command("verify")(pipeline.verify_cmd)
app.command("deploy")(onchain.deploy_cmd)
app.command("mint")(onchain.mint_cmd)
app.command("show")(onchain.show_cmd)
app.command("verify-asset")(onchain.verify_asset_cmd)
app.command("export-car")(onchain.export_car_cmd)
app.command("gateway")(onchain.gateway_cmd)
app.command("serve")(node.serve_cmd)
app.add_typer(node.jobs_app, name="jobs")
app.add_typer(onchain.chain_app, name="chain")
app.command("doctor")(onchain.doctor_cmd)
app.command("demo")(onchain.demo_cmd)
app.command("bench")(bench.bench_cmd)


def main() -> None:
    unwind_on_sigterm()
    app()
