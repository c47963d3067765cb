"""deploy, mint, show, verify-asset, export-car, gateway, chain up|down|status, doctor, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from proofmint import config

from ._common import JsonOpt, WorkspaceOpt, output, run, stderr

RpcOpt = Annotated[str | None, typer.Option(
    "--rpc-url", envvar=config.RPC_URL,
    help="EVM JSON-RPC URL \\[default: an embedded anvil whose state lives in the workspace]. "
         "Signing key: PROOFMINT_PRIVATE_KEY or PROOFMINT_KEYSTORE.")]

GatewayOpt = Annotated[str | None, typer.Option(
    "--gateway", envvar=config.GATEWAY,
    help="IPFS HTTP gateway to fetch content from (e.g. http://127.0.0.1:8080 from `proofmint "
         "gateway`, or any public one); default: this workspace's content store. Everything "
         "fetched is re-hashed against its CID.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", help="ProvenanceToken address, for a chain this workspace never deployed to.")]


def _split(spec: str | None) -> list[tuple[str, int]] | None:
    """`0xA:7000,0xB:3000` as (address, basis points) pairs."""
    if not spec:
        return None
    from proofmint.errors import UsageError

    pairs = []
    for part in spec.split(","):
        who, _, bps = part.strip().partition(":")
        if not bps.strip().isdigit():
            raise UsageError(f"--royalty-split entry {part!r} is not ADDRESS:BPS (e.g. 0xabc...:2500)")
        pairs.append((who.strip(), int(bps)))
    return pairs


chain_app = typer.Typer(help="The workspace's embedded chain: one anvil, shared by every command and the "
                             "node, its state saved after every block.", no_args_is_help=True)


def deploy_cmd(
    circuit: Annotated[str, typer.Argument(help="Circuit id (or 8+ character prefix).")],
    reusable: Annotated[bool, typer.Option(
        help="Use ezkl's reusable verifier (shared by all circuits) + this circuit's VKA. "
             "Chosen automatically when the dedicated verifier exceeds 24,576 bytes.")] = False,
    royalty_bps: Annotated[int, typer.Option(help="Royalty on every sale of the model's tokens, "
                                                  "basis points (max 2500).")] = 500,
    royalty_split: Annotated[str | None, typer.Option(
        help="Who shares the royalty: ADDRESS:BPS,... summing to 10000 (owner, data "
             "contributors, ...); default: all to the signer.")] = None,
    training_data: Annotated[Path | None, typer.Option(
        help="Training-data manifest (training.json from `models export`): registered as "
             "its Merkle root and CID.")] = None,
    version: Annotated[str, typer.Option(help="Model version.")] = "1",
    parent_model: Annotated[str | None, typer.Option(
        help="Registration id (0x...) of the model this one was fine-tuned from.")] = None,
    commercial: Annotated[bool, typer.Option(help="License: commercial use allowed.")] = True,
    derivatives: Annotated[bool, typer.Option(
        help="License: tokens may name this model's tokens as parents.")] = True,
    attribution: Annotated[bool, typer.Option(help="License: attribution required.")] = True,
    parent_share_bps: Annotated[int, typer.Option(
        help="License: share of a derivative token's royalty paid to its parent's creator, "
             "basis points; paid by derivatives of this model's own tokens and by models "
             "registered with this one as --parent-model (a model never pays another's "
             "license unless its owner named it).")] = 0,
    prover_share_bps: Annotated[int, typer.Option(
        help="License: share of a token's royalty paid to whoever proved it, basis points, "
             "where its bundle names the prover (signed by their key; `proofmint serve` names "
             "its operator).")] = 0,
    license_uri: Annotated[str, typer.Option(help="The license's full text (a URI).")] = "",
    rpc_url: RpcOpt = None, workspace: WorkspaceOpt = None, json_: JsonOpt = False,
):
    """Publish the circuit (content store), deploy its EZKL verifier and register the model
    with its license and royalty split (a repeat is a no-op).

    Example: proofmint deploy 09a4e304 --training-data model/training.json
    --royalty-split 0xOWNER:8000,0xDATA:2000 --parent-share-bps 1000
    """
    import proofmint

    r = run(lambda: proofmint.deploy(
        circuit, reusable=reusable, royalty_bps=royalty_bps, royalty_split=_split(royalty_split),
        license=proofmint.License(commercial, derivatives, attribution, parent_share_bps, prover_share_bps),
        license_uri=license_uri, training_data=training_data, version=version,
        parent_model=parent_model, rpc_url=rpc_url, workspace=workspace))

    def human(d: dict) -> None:
        state = "already deployed" if d["already_deployed"] else "deployed"
        if d["segments"]:
            stderr.print(f"[green]{state}[/] {len(d['segments'])} linked segments on chain {d['chain_id']}; "
                         f"registry {d['registry']}, token {d['token']}")
            for i, s in enumerate(d["segments"]):
                stderr.print(f"  segment {i}: circuit {s['circuit_id'][:16]}, {s['kind']} verifier {s['address']} "
                             f"({s['runtime_bytes']} bytes)")
        else:
            stderr.print(f"[green]{state}[/] {d['verifier_kind']} verifier {d['verifier']} "
                         f"({d['verifier_runtime_bytes']} bytes) "
                         f"on chain {d['chain_id']}; registry {d['registry']}, token {d['token']}")
        for k, v in d["gas"].items():
            stderr.print(f"  gas {k:<16} {v:>10,}")

    output(r.to_dict(), json_, human)


def mint_cmd(
    proof: Annotated[Path, typer.Argument(help="Proof bundle from `proofmint prove`.")],
    to: Annotated[str | None, typer.Option(help="Token recipient \\[default: the signer].")] = None,
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
        for token_id, token_uri, image in zip(ids, d["token_uris"], d["images"]):
            stderr.print(f"  token {token_id}: {token_uri}  image {image}")
        if d["gas_used"]:
            stderr.print(f"  gas commit {d['gas_used']['commit']:,}, mint {d['gas_used']['mint']:,}")
            alone = [v for k, v in d["gas_used"].items() if k.startswith("verify_segment_")]
            if alone:
                stderr.print(f"  (one transaction for {len(alone)} segment proofs; each one's verifier alone: "
                             + ", ".join(f"{g:,}" for g in alone) + ")")
        print(" ".join(map(str, ids)))

    output(r.to_dict(), json_, human)


def show_cmd(token_id: Annotated[int, typer.Argument(help="Token id.")],
             rpc_url: RpcOpt = None, gateway: GatewayOpt = None, token: TokenOpt = None,
             workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Show a token's on-chain record, its ERC-7007 metadata, owner and royalty split, and the
    registration it was minted under (its owner; an alias of an earlier one is flagged).

    Example: proofmint show 1
    """
    import proofmint

    r = run(lambda: proofmint.show(token_id, rpc_url=rpc_url, gateway=gateway, token=token,
                                   workspace=workspace))

    def human(d: dict) -> None:
        print(json.dumps(d, indent=2, default=str))
        _print_registration(d["registration"])
        if d["lineage"]:
            stderr.print(f"parent token {d['record']['parent']}: {d['lineage']}")
        if d["segments"]:
            segs = d["segments"]["segments"]
            stderr.print(f"a segmented model's token: {len(segs)} segment proofs, each checked on its verifier "
                         f"({', '.join(s['verifier'] for s in segs)}), and {len(d['segments']['links'])} links")

    output(r.to_dict(), json_, human)


def _print_registration(reg: dict) -> None:
    """The registration a token was minted under, its owner, and what it may be an alias of."""
    if not reg:
        return
    stderr.print(f"registration {reg['id']}, owned by {reg['owner']}")
    for other in reg["alias_of"]:
        stderr.print(f"[yellow]⚠ alias of registration {other['id']} by owner {other['owner']}[/] "
                     f"(registered first, same {', '.join(other['same'])})")


def verify_asset_cmd(token_id: Annotated[int, typer.Argument(help="Token id.")],
                     rpc_url: RpcOpt = None, gateway: GatewayOpt = None, token: TokenOpt = None,
                     workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Re-check a token from its id alone: fetch its metadata, model, circuit, proof and content
    by CID; check them against the chain, verify the proof on-chain and locally, re-run the
    model, and compare the content with the proof's outputs.

    Works in an empty workspace on another machine: pass --rpc-url, --gateway and --token.
    Exit 0 when every check passes, 1 otherwise.

    Example: proofmint verify-asset 1 --rpc-url http://host:8545 --gateway http://host:8080
    --token 0x5FbDB2315678afecb367f032d93F642f64180aa3
    """
    import proofmint

    r = run(lambda: proofmint.verify_asset(token_id, rpc_url=rpc_url, gateway=gateway, token=token,
                                           workspace=workspace))

    def human(d: dict) -> None:
        for name, c in d["checks"].items():
            mark = "[green]✓[/]" if c["ok"] else "[red]✗[/]"
            stderr.print(f"{mark} {name}: {c['detail']}")
        _print_registration(d["registration"])
        stderr.print(f"verdict: {'[green]VALID[/]' if d['valid'] else '[red]INVALID[/]'} (token {d['token_id']})")

    output(r.to_dict(), json_, human)
    raise typer.Exit(0 if r.valid else 1)


def export_car_cmd(token_id: Annotated[int, typer.Argument(help="Token id.")],
                   out: Annotated[Path, typer.Option(help="The CAR file to write.")],
                   rpc_url: RpcOpt = None, gateway: GatewayOpt = None, token: TokenOpt = None,
                   workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Write every file a token and its model refer to as one CAR, for a pinning service
    (or `ipfs dag import`).

    Example: proofmint export-car 1 --out token-1.car
    """
    import proofmint

    r = run(lambda: proofmint.export_car(token_id, out=out, rpc_url=rpc_url, gateway=gateway,
                                         token=token, workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print(
        f"wrote {d['car']}: {len(d['roots'])} files, {d['blocks']} blocks, {d['bytes']:,} bytes"))


def gateway_cmd(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
                port: Annotated[int, typer.Option(help="Port.")] = 8080,
                workspace: WorkspaceOpt = None):
    """Serve this workspace's content store read-only at http://HOST:PORT/ipfs/CID, so
    another machine can fetch (and re-hash) a token's content. Ctrl-C stops it.

    Example: proofmint gateway --port 8080
    """
    import proofmint

    stderr.print(f"serving the content store at http://{host}:{port}/ipfs/<CID> (Ctrl-C stops)")
    run(lambda: proofmint.gateway(host=host, port=port, workspace=workspace))


@chain_app.command("up")
def chain_up_cmd(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Keep the workspace's chain running until `chain down`, used or not (without it, the chain
    runs while some command or `serve` uses it). Prints its RPC URL.

    Example: proofmint chain up
    """
    import proofmint

    r = run(lambda: proofmint.chain_up(workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print(f"anvil running at {d['rpc_url']} (pid {d['pid']})"))


@chain_app.command("down")
def chain_down_cmd(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Stop the workspace's chain, saving its state first (a command using it starts it again).

    Example: proofmint chain down
    """
    import proofmint

    r = run(lambda: proofmint.chain_down(workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print("stopped" if d["stopped"] else "no chain was running"))


@chain_app.command("status")
def chain_status_cmd(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Say whether the workspace's chain runs, where, and the newest block its state file holds.

    Example: proofmint chain status --json
    """
    import proofmint

    r = run(lambda: proofmint.chain_status(workspace=workspace))
    output(r.to_dict(), json_, lambda d: stderr.print(
        (f"running at {d['rpc_url']} (anvil pid {d['pid']}, keeper pid {d['keeper_pid']}"
         + (", pinned by `chain up`)" if d["pinned"] else ")") if d["running"] else "not running")
        + (f"; state saved at block {d['saved_block']}" if d["saved_block"] is not None else "")))


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
        stderr.print(f"image: {d['image']}  (tokenURI {d['token_uri']})")
        stderr.print("metadata (ERC-7007):")
        stderr.print(json.dumps(d["metadata"], indent=2), markup=False, highlight=False)
        stderr.print("look at it again (the anvil state is kept in the workspace):")
        for cmd in d["commands"]:
            stderr.print(f"  {cmd}", markup=False, highlight=False)
        if d["srs_warning"]:
            stderr.print(f"[yellow]SRS: {d['srs_warning']}[/]")

    output(r.to_dict(), json_, human)
    raise typer.Exit(0 if r.valid else 1)
