"""The prover's share on a real anvil: a license reserves ``proverShareBps`` for whoever proved;
a bundle names its prover, signed over the proof's statement; the token's royalty split pays
them; a swapped prover is refused, before any transaction and on-chain."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from eth_account import Account

import proofmint
from proofmint.errors import TransactionRevertedError, VerificationError
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.prover_sign import sign
from proofmint.verifier.chain.records import deployment

from ...conftest import run_cli
from .test_onchain import commit_by_hand, model_id

PROVER, OTHER = (Account.from_key(dev_keys()[i]) for i in (5, 6))
PROVER_SHARE = 2_500


@pytest.fixture(scope="module")
def shared(zoo, circuits, anvil, tmp_path_factory):
    """A workspace of its own on the session's anvil (its own registry and token): the wine MLP
    registered with a 25 % prover share, and a proof to mint."""
    root = tmp_path_factory.mktemp("prover-share")
    ws = Workspace.resolve(root / "ws")
    mlp = circuits["mlp"]
    shutil.copytree(Path(mlp.package.dir), ws.circuit_dir(mlp.circuit_id))
    dep = proofmint.deploy(mlp.circuit_id, license=proofmint.License(prover_share_bps=PROVER_SHARE),
                           rpc_url=anvil.url, workspace=ws)
    return {"ws": ws, "root": root, "dep": dep, "pkg": mlp.package, "zoo": zoo}


def _proof(shared, row: int, signer=None, named: str | None = None) -> Path:
    """A fresh MLP proof of calibration row ``row``, signed by ``signer`` and naming ``named``
    (the signer, unless given)."""
    import json

    calib = json.loads(open(shared["zoo"]["mlp"].calibration).read())["input_data"][0]
    x = shared["root"] / f"x{row}.json"
    x.write_text(json.dumps({"input_data": [calib[13 * row:13 * row + 13]]}))
    out = shared["root"] / f"p{row}.json"
    proofmint.prove(shared["pkg"].circuit_id, input=x, out=out, workspace=shared["ws"])
    if signer is not None:
        b = load_bundle(out)
        b.prover = sign(b.prover, b, signer)
        if named:
            b.prover["address"] = named
        b.save(out)
    return out


def test_the_royalty_split_pays_the_prover_its_share(shared, anvil):
    minted = proofmint.mint(_proof(shared, 35, PROVER), rpc_url=anvil.url, workspace=shared["ws"])
    print(f"\ngas: MLP mint naming a prover (a prover split made) {minted.gas_used['mint']:,}")
    view = proofmint.show(minted.token_id, rpc_url=anvil.url, workspace=shared["ws"])
    assert view.record["prover"] == PROVER.address
    with connect(rpc_url=anvil.url, workspace=shared["ws"]) as c:
        model_split = deployment(c).model("0x" + model_id(shared["ws"], shared["pkg"].circuit_id).hex())["royaltyReceiver"]
    rows = [(r["payee"], r["bps"]) for r in view.royalty["split"]]
    assert rows == [(model_split, 10_000 - PROVER_SHARE), (PROVER.address, PROVER_SHARE)]
    verdict = proofmint.verify_asset(minted.token_id, rpc_url=anvil.url, workspace=shared["ws"])
    assert verdict.checks["prover"].ok and verdict.valid, {k: v.detail for k, v in verdict.checks.items() if not v.ok}
    unnamed = proofmint.mint(_proof(shared, 36), rpc_url=anvil.url, workspace=shared["ws"])
    assert proofmint.show(unnamed.token_id, rpc_url=anvil.url, workspace=shared["ws"]).royalty["receiver"] == model_split


def test_the_minter_who_proved_names_itself(shared, anvil):
    """The node's way (``as_prover``): the bundle names no prover; the minter signs as one."""
    minted = proofmint.mint(_proof(shared, 37), as_prover=True, rpc_url=anvil.url, workspace=shared["ws"])
    view = proofmint.show(minted.token_id, rpc_url=anvil.url, workspace=shared["ws"])
    assert view.record["prover"] == view.record["creator"]
    assert [r["bps"] for r in view.royalty["split"]] == [10_000 - PROVER_SHARE, PROVER_SHARE]


def test_a_swapped_prover_is_refused_before_any_transaction_and_on_chain(shared, anvil):
    swapped = _proof(shared, 38, PROVER, named=OTHER.address)
    with pytest.raises(VerificationError, match=f"names prover {OTHER.address}, but its prover signature is "
                                                f"{PROVER.address}'s"):
        proofmint.mint(swapped, rpc_url=anvil.url, workspace=shared["ws"])
    r = run_cli("mint", str(swapped), "--rpc-url", anvil.url, "--workspace", str(shared["ws"].root))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "prover was swapped" in lines[0], r.stderr
    bundle, pkg = load_bundle(swapped), shared["pkg"]
    with connect(rpc_url=anvil.url, workspace=shared["ws"]) as c:
        d = deployment(c)
        request, instances = commit_by_hand(c, d.token, d.abi, bundle, pkg, model_id(shared["ws"], pkg.circuit_id))
        signature = bytes.fromhex(bundle.prover["signature"][2:])
        with pytest.raises(TransactionRevertedError, match=rf"ProvenanceTokenBadProverSignature\({OTHER.address.lower()}, "
                                                          rf"{PROVER.address.lower()}\)"):
            c.transact(d.token.functions.mintWithProver(request, bundle.proof_bytes, instances, [], OTHER.address,
                                                        signature), d.abi)
        c.transact(d.token.functions.mintWithProver(request, bundle.proof_bytes, instances, [], PROVER.address,
                                                    signature), d.abi)  # the genuine prover: minted
        assert d.token_record(d.token.functions.totalMinted().call())["prover"] == PROVER.address
