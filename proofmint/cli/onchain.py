"""deploy, mint, show, verify-asset, chain up|down|status, doctor, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from proofmint import config

from ._common import JsonOpt, WorkspaceOpt, output, run, stderr

RpcOpt = Annotated[str | None, typer.Option(
    "--rpc-url", envvar=config.RPC_URL,
    help="EVM JSON-RPC URL [default: an embedded anvil whose state lives in the workspace]. "
         "Signing key: PROOFMINT_PRIVATE_KEY or PROOFMINT_KEYSTORE.")]

chain_app = typer.Typer(help="Keep the embedded anvil running in the background across commands.",
                        no_args_is_help=True)


def deploy_cmd(
    circuit: Annotated[str, typer.Argument(help="Circuit id (or 8+ character prefix).")],
    reusable: Annotated[bool, typer.Option(
        help="Use ezkl's reusable verifier (shared by all circuits) + this circuit's VKA. "
             "Chosen automatically when the dedicated verifier exceeds 24,576 bytes.")] = False,
    royalty_bps: Annotated[int, typer.Option(help="Royalty to the model owner, basis points.")] = 500,
    metadata_uri: Annotated[str, typer.Option(help="Model metadata URI.")] = "",
    license_uri: Annotated[str, typer.Option(help="Model license URI.")] = "",
    rpc_url: RpcOpt = None, workspace: WorkspaceOpt = None, json_: JsonOpt = False,
):
    """Deploy the circuit's EZKL verifier and register the model (a repeat is a no-op).

    Example: proofmint deploy 09a4e304 --royalty-bps 250
    """
    import proofmint

    r = run(lambda: proofmint.deploy(circuit, reusable=reusable, royalty_bps=royalty_bps,
                                     metadata_uri=metadata_uri, license_uri=license_uri, rpc_url=rpc_url,
                                     workspace=workspace))

    def human(d: dict) -> None:
        state = "already deployed" if d["already_deployed"] else "deployed"
        stderr.print(f"[green]{state}[/] {d['verifier_kind']} verifier {d['verifier']} "
                     f"({d['verifier_runtime_bytes']} bytes) "
                     f"on chain {d['chain_id']}; registry {d['registry']}, token {d['token']}")
        for k, v in d["gas"].items():
            stderr.print(f"  gas {k:<16} {v:>10,}")

    output(r.to_dict(), json_, human)


def mint_cmd(
    proof: Annotated[Path, typer.Argument(help="Proof bundle from `proofmint prove`.")],
    to: Annotated[str | None, typer.Option(help="Token recipient [default: the signer].")] = None,
    parent: Annotated[int, typer.Option(help="Parent token id (derivative lineage); 0 for none.")] = 0,
    proof_uri: Annotated[str | None, typer.Option(help="Where the bundle can be fetched.")] = None,
    rpc_url: RpcOpt = None, workspace: WorkspaceOpt = None, json_: JsonOpt = False,
):
    """Mint a verified inference as a provenance token (commit, then reveal with the proof).

    Example: proofmint mint p.json --parent 3
    """
    import proofmint

    r = run(lambda: proofmint.mint(proof, to=to, parent=parent, proof_uri=proof_uri, rpc_url=rpc_url,
                                   workspace=workspace))

    def human(d: dict) -> None:
        ids = d["token_ids"]
        what = f"token {ids[0]}" if len(ids) == 1 else f"tokens {ids[0]}-{ids[-1]} (one per inference)"
        stderr.print(f"[green]minted[/] {what} to {d['owner']} (tx {d['tx_hash']})")
        if d["gas_used"]:
            stderr.print(f"  gas commit {d['gas_used']['commit']:,}, mint {d['gas_used']['mint']:,}")
        print(" ".join(map(str, ids)))

    output(r.to_dict(), json_, human)


def show_cmd(token_id: Annotated[int, typer.Argument(help="Token id.")],
             rpc_url: RpcOpt = None, workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Show a token's on-chain record, metadata, owner and royalty receiver.

    Example: proofmint show 1
    """
    import proofmint

    r = run(lambda: proofmint.show(token_id, rpc_url=rpc_url, workspace=workspace))
    output(r.to_dict(), json_, lambda d: print(json.dumps(d, indent=2, default=str)))


def verify_asset_cmd(token_id: Annotated[int, typer.Argument(help="Token id.")],
                     rpc_url: RpcOpt = None, workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Re-check a token from its id alone: on-chain and local proof, record, re-run of the model.

    Exit 0 when every check passes, 1 otherwise. Example: proofmint verify-asset 1
    """
    import proofmint

    r = run(lambda: proofmint.verify_asset(token_id, rpc_url=rpc_url, workspace=workspace))

    def human(d: dict) -> None:
        for name, c in d["checks"].items():
            mark = "[green]✓[/]" if c["ok"] else "[red]✗[/]"
            stderr.print(f"{mark} {name}: {c['detail']}")
        stderr.print(f"verdict: {'[green]VALID[/]' if d['valid'] else '[red]INVALID[/]'} (token {d['token_id']})")

    output(r.to_dict(), json_, human)
    raise typer.Exit(0 if r.valid else 1)


@chain_app.command("up")
def chain_up_cmd(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Start anvil in the background (state kept in the workspace)."""
    import proofmint

    r = run(lambda: proofmint.chain_up(workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print(f"anvil running at {d['rpc_url']} (pid {d['pid']})"))


@chain_app.command("down")
def chain_down_cmd(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Stop the background anvil; its state is saved first."""
    import proofmint

    r = run(lambda: proofmint.chain_down(workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print("stopped" if d["stopped"] else "no chain was running"))


@chain_app.command("status")
def chain_status_cmd(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Say whether a background anvil runs for this workspace."""
    import proofmint

    r = run(lambda: proofmint.chain_status(workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print(
        f"running at {d['rpc_url']} (pid {d['pid']})" if d["running"] else "not running"))


def doctor_cmd(json_: JsonOpt = False):
    """List every tool proofmint uses, its version and path, and what is missing."""
    import proofmint

    tools = [t.to_dict() for t in run(proofmint.doctor)]

    def human(d: dict) -> None:
        for t in d["tools"]:
            if t["problem"]:
                stderr.print(f"[red]✗[/] {t['name']}: {t['problem']}")
            else:
                stderr.print(f"[green]✓[/] {t['name']:<30} {t['version']:<45} {t['path']}")

    output({"tools": tools}, json_, human)
    raise typer.Exit(1 if any(t["problem"] for t in tools) else 0)


def demo_cmd(out: Annotated[Path, typer.Option(help="Folder for the demo's files.")] = Path("demo-out"),
             workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Run the whole flow on the zoo's generative model, on an embedded anvil."""
    import proofmint

    r = run(lambda: proofmint.demo(out=out, workspace=workspace))

    def human(d: dict) -> None:
        for s in d["steps"]:
            gas = "  gas " + ", ".join(f"{k} {v:,}" for k, v in s["gas"].items()) if "gas" in s else ""
            stderr.print(f"{s['step']:<18} {s['seconds']:>7.2f} s{gas}")
        stderr.print(f"token {d['token_id']} — verify-asset: "
                     f"{'VALID' if d['verdict']['valid'] else 'INVALID'}")
        if d["srs_warning"]:
            stderr.print(f"[yellow]SRS: {d['srs_warning']}[/]")

    output(r.to_dict(), json_, human)
    raise typer.Exit(0 if r.valid else 1)
