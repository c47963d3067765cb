"""serve, jobs submit|status|wait: the prover node and its client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from proofmint import config

from ._common import JsonOpt, WorkspaceOpt, output, run, stderr
from .onchain import RpcOpt

jobs_app = typer.Typer(help="Talk to a running prover node (`proofmint serve`).", no_args_is_help=True)

NodeOpt = Annotated[str | None, typer.Option(
    "--node", envvar=config.NODE, help=f"The node's URL (default {config.DEFAULT_NODE}).")]
TokenFileOpt = Annotated[Path | None, typer.Option(
    help="File holding the node's API token (default: the workspace's node/token, made on first start).")]


def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on (keep 127.0.0.1 unless a proxy "
                                           "with TLS stands in front).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Warm prover processes (each loads a circuit once).")] = 1,
    threads: Annotated[int | None, typer.Option(
        help="Prover threads per worker (default: all cores divided among the workers).")] = None,
    backend: Annotated[str, typer.Option(help="local | ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address, with --backend ray.")] = None,
    token_file: TokenFileOpt = None,
    max_queue: Annotated[int, typer.Option(help="Pending items at most; beyond, 429 + Retry-After.")] = 1_000,
    rpc_url: RpcOpt = None, workspace: WorkspaceOpt = None,
):
    """Run a prover node: a job API (POST /api/jobs with a bearer token), warm prover workers,
    minting, the explorer (/) and a content gateway (/ipfs/CID), in one process. The queue is
    SQLite in the workspace: a restart loses no accepted job. Ctrl-C stops it.

    Example: proofmint serve --port 8000 --workers 2
    """
    import proofmint

    run(lambda: proofmint.serve(host=host, port=port, rpc_url=rpc_url, workers=workers, threads=threads,
                                backend=backend, address=address, token_file=token_file, max_queue=max_queue,
                                workspace=workspace))


def _human(d: dict) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in d["progress"].items() if v)
    stderr.print(f"job {d['job']}: {d['status']} ({counts})")
    for item in d["items"]:
        extra = f" tokens {item['tokens']}" if item.get("tokens") else ""
        stderr.print(f"  item {item['idx']}: {item['status']}{extra}"
                     + (f" — {item['error']}" if item.get("error") else ""))


@jobs_app.command("submit")
def jobs_submit_cmd(
    circuit: Annotated[str, typer.Argument(help="Circuit id (or 8+ character prefix) on the node.")],
    input: Annotated[Path, typer.Option(help="Inputs: ezkl JSON, .npy or JSONL (one per line).")],
    mint: Annotated[bool, typer.Option(help="Mint each verified inference as a token.")] = False,
    creator: Annotated[str | None, typer.Option(help="Who receives the tokens (default: the node's signer).")] = None,
    node: NodeOpt = None, token_file: TokenFileOpt = None, workspace: WorkspaceOpt = None, json_: JsonOpt = False,
):
    """Queue a job on a node; returns at once with the job id.

    Example: proofmint jobs submit 09a4e304 --input stream.jsonl --mint
    """
    import proofmint

    r = run(lambda: proofmint.jobs_submit(circuit, input=input, node=node, token_file=token_file, mint=mint,
                                          creator=creator, workspace=workspace))
    output(r.to_dict(), json_, _human)


@jobs_app.command("status")
def jobs_status_cmd(job: Annotated[str, typer.Argument(help="Job id.")], node: NodeOpt = None,
                    json_: JsonOpt = False):
    """A job's status, per item: proven, minted (with token ids) or failed (with the reason).

    Example: proofmint jobs status 3f9c2a1b0d4e5f60
    """
    import proofmint

    output(run(lambda: proofmint.jobs_status(job, node=node)).to_dict(), json_, _human)


@jobs_app.command("wait")
def jobs_wait_cmd(job: Annotated[str, typer.Argument(help="Job id.")], node: NodeOpt = None,
                  timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600,
                  json_: JsonOpt = False):
    """Wait until every item of a job is done or failed. Exit 0 when all are done, 1 otherwise.

    Example: proofmint jobs wait 3f9c2a1b0d4e5f60
    """
    import proofmint

    r = run(lambda: proofmint.jobs_wait(job, node=node, timeout=timeout))
    output(r.to_dict(), json_, _human)
    raise typer.Exit(0 if r.status == "done" else 1)
