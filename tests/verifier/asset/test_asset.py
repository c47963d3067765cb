"""The asset a person, a marketplace and another machine see (issue: content, terms, royalties).

On anvil, with the zoo generator's real proofs, in a workspace of its own: ERC-7007 metadata
by CID, served by the gateway, checked by ipfs-car; verify-asset from an empty workspace with
only the RPC URL, a gateway and the token address, and what it names when content, model or
proof were swapped; a derivative's royalty reaching each party to the wei.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account

import proofmint
from proofmint.store import Workspace
from proofmint.verifier.evm import build_contracts
from proofmint.verifier.content.publish import schema_errors
from proofmint.verifier.chain.client import connect
from proofmint.verifier.content.store import ContentStore, cid_from_uri
from proofmint.verifier.content.gateway import Gateway
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.records import deployment

from ...conftest import ASSET_PARENT_SHARE as PARENT_SHARE
from ...conftest import ASSET_SPLIT as SPLIT
from ...conftest import run_cli
from ..content.test_content import IPFS_CAR, ipfs_car_cid

OWNER, CREATOR, BUYER = (Account.from_key(dev_keys()[i]) for i in (0, 3, 1))
DATA_A, DATA_B = (Account.from_key(dev_keys()[i]) for i in (8, 9))


def test_a_generator_token_is_erc7007_metadata_served_by_cid(asset, anvil, tmp_path):
    ws, first = asset["ws"], asset["first"]
    shown = proofmint.show(first.token_id, rpc_url=anvil.url, workspace=ws)
    meta = shown.metadata
    assert shown.token_uri == first.token_uris[0] and schema_errors(meta) == []
    assert meta["aigc_type"] == "image" and meta["proof_type"] == "validity"
    assert meta["input_commitment"] == shown.record["inputCommitment"]
    assert meta["outputs_hash"] == shown.record["outputsHash"]
    assert meta["proof"]["uri"] == shown.record["proofURI"] and meta["parent"] == 0
    assert json.loads(meta["prompt"]) == pytest.approx(json.loads(open(first_bundle(asset)).read())["input"])
    with Gateway(ws) as g:
        for field in ("image", "aigc_data"):
            cid = cid_from_uri(meta[field])
            with urllib.request.urlopen(f"{g.url}/ipfs/{cid}", timeout=10) as r:
                body, kind = r.read(), r.headers["Content-Type"]
            path = tmp_path / field
            path.write_bytes(body)
            assert kind == "image/png" and ipfs_car_cid(path, tmp_path) == cid  # npm's IPFS tooling agrees
        shown_image = tmp_path / "image"
        assert subprocess.run(["file", shown_image], capture_output=True, text=True).stdout.count("PNG") == 1
    from PIL import Image
    with Image.open(shown_image) as img:
        assert img.width >= 320  # a marketplace's size, nearest-neighbour from 8x8
    assert Path(first.images[0]).read_bytes() == shown_image.read_bytes()


def first_bundle(asset) -> Path:
    rec = proofmint.show(asset["first"].token_id, rpc_url=asset["rpc"], workspace=asset["ws"]).record
    return asset["ws"].minted_bundle(rec["proofHash"], rec["inferenceId"])


def _verify_elsewhere(asset, anvil, tmp_path, gateway_ws: Workspace, token_id: int | None = None):
    """verify-asset from an empty workspace (another machine), given only the RPC URL, a
    gateway over ``gateway_ws`` and the token contract's address."""
    empty = tmp_path / "elsewhere"
    with Gateway(gateway_ws) as g:
        r = run_cli("verify-asset", str(token_id or asset["first"].token_id), "--rpc-url", anvil.url,
                    "--gateway", g.url, "--token", asset["deploy"].token, "--workspace", empty, "--json")
    return r, json.loads(r.stdout) if r.stdout.strip() else None


def test_verify_asset_in_an_empty_workspace_with_only_rpc_gateway_and_token(asset, anvil, tmp_path):
    r, verdict = _verify_elsewhere(asset, anvil, tmp_path, asset["ws"])
    assert r.returncode == 0 and verdict["valid"], verdict
    assert {"metadata", "model file", "circuit", "content", "on-chain verify", "local verify",
            "re-run model", "metadata schema"} <= set(verdict["checks"])
    assert "pixels" in verdict["checks"]["content"]["detail"]
    assert not (tmp_path / "elsewhere" / "circuits").exists()  # nothing of the minter's was there


def _swapped(asset, tmp_path, cid: str, data: bytes) -> Workspace:
    """A gateway store like A's, with ``data`` served under ``cid``."""
    ws = Workspace.resolve(tmp_path / "evil")
    shutil.copytree(ContentStore(asset["ws"]).root, ContentStore(ws).root)
    ContentStore(ws).path(cid).write_bytes(data)
    return ws


def _meta(asset, anvil) -> tuple[dict, dict]:
    shown = proofmint.show(asset["first"].token_id, rpc_url=anvil.url, workspace=asset["ws"])
    with connect(rpc_url=anvil.url, workspace=asset["ws"]) as c:
        reg = deployment(c).model(shown.record["modelId"])
    return shown.metadata, reg


def _failed(verdict) -> set[str]:
    return {name for name, check in verdict["checks"].items() if not check["ok"]}


def test_content_swapped_at_the_gateway_is_named(asset, anvil, tmp_path):
    meta, _ = _meta(asset, anvil)
    evil = _swapped(asset, tmp_path, cid_from_uri(meta["image"]), b"\x89PNG another picture")
    r, verdict = _verify_elsewhere(asset, anvil, tmp_path, evil)
    assert r.returncode == 1 and _failed(verdict) == {"content"}, verdict
    assert "swapped" in verdict["checks"]["content"]["detail"]


def test_a_model_file_that_does_not_hash_to_the_registered_cid_is_named(asset, anvil, tmp_path):
    _, reg = _meta(asset, anvil)
    evil = _swapped(asset, tmp_path, cid_from_uri(reg["modelURI"]), b"not the model")
    r, verdict = _verify_elsewhere(asset, anvil, tmp_path, evil)
    assert r.returncode == 1 and _failed(verdict) == {"model file"}, verdict


def test_a_tampered_proof_behind_the_proof_uri_is_named(asset, zoo, circuits, anvil, tmp_path):
    """A minter may point proofURI anywhere: here at a bundle whose proof bytes were changed
    (the mint itself carried the genuine proof). The bundle then hashes to its CID but is not
    the proof the token records, and does not verify."""
    ws = asset["ws"]
    gen = circuits["generator"]
    calib = json.loads(open(zoo["generator"].calibration).read())["input_data"][0]
    x = tmp_path / "x3.json"
    x.write_text(json.dumps({"input_data": [calib[14 * 7:14 * 8]]}))
    genuine = proofmint.prove(gen.circuit_id, input=x, out=tmp_path / "p3.json", workspace=ws).bundles[0]
    data = json.loads(Path(genuine).read_text())
    data["ezkl_proof"]["proof"][100] ^= 0xFF
    tampered_uri = "ipfs://" + ContentStore(ws).add_json(data)
    m = proofmint.mint(genuine, proof_uri=tampered_uri, rpc_url=anvil.url, workspace=ws)
    r, verdict = _verify_elsewhere(asset, anvil, tmp_path, ws, token_id=m.token_id)
    assert r.returncode == 1 and {"bundle matches record", "local verify"} <= _failed(verdict), verdict


def _balances(c, accounts) -> list[int]:
    return [c.w3.eth.get_balance(a) for a in accounts]


@pytest.mark.parametrize("price", [10**18, 12_345])
def test_a_derivatives_royalty_reaches_every_party_to_the_wei(price, asset, anvil):
    """A sale of the derivative pays its royalty to a split: the parent's creator 20 %, the
    model's split 80 %, itself 70/20/10 to owner and two data contributors (pull payments;
    floor division, the remainder stays in the split)."""
    ws, child = asset["ws"], asset["child"]
    split_abi = build_contracts(ws)["RoyaltySplit"]["abi"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        receiver, royalty = d.token.functions.royaltyInfo(child.token_id, price).call()
        assert royalty == price * 500 // 10_000
        model_split = d.model(d.token_record(child.token_id)["modelId"])["royaltyReceiver"]
        assert receiver != model_split  # a derivative has its own split
        top, inner = c.contract(receiver, split_abi), c.contract(model_split, split_abi)
        assert top.functions.payees().call() == [model_split, CREATOR.address]

        def received(split) -> int:  # a split's lifetime income
            return c.w3.eth.get_balance(split.address) + split.functions.totalReleased().call()

        top_before, inner_before = received(top), received(inner)
        c.w3.eth.send_transaction({"from": BUYER.address, "to": receiver, "value": royalty})  # the sale
        people = [OWNER.address, DATA_A.address, DATA_B.address, CREATOR.address]
        before = _balances(c, people)
        for split, payee in ((top, model_split), (top, CREATOR.address), (inner, OWNER.address),
                             (inner, DATA_A.address), (inner, DATA_B.address)):
            if split.functions.releasable(payee).call():
                c.transact(split.functions.release(payee), split_abi, account=BUYER)  # anyone may trigger it
        got = [a - b for a, b in zip(_balances(c, people), before)]

        def due(total_before: int, paid: int, bps: int) -> int:  # floor of the share, cumulatively
            return (total_before + paid) * bps // 10_000 - total_before * bps // 10_000

        to_model = due(top_before, royalty, 10_000 - PARENT_SHARE)
        assert received(inner) == inner_before + to_model
        assert got == [*(due(inner_before, to_model, bps) for _, bps in SPLIT),
                       due(top_before, royalty, PARENT_SHARE)]
        if top_before == 0:  # the first sale: 5 % of 1 ETH, split exactly
            assert got == [28 * 10**15, 8 * 10**15, 4 * 10**15, 10**16]


def test_a_token_of_the_first_mint_pays_the_model_split_only(asset, anvil):
    with connect(rpc_url=anvil.url, workspace=asset["ws"]) as c:
        d = deployment(c)
        rec = d.token_record(asset["first"].token_id)
        receiver, _ = d.token.functions.royaltyInfo(asset["first"].token_id, 10_000).call()
        assert receiver == rec["royaltyReceiver"] == d.model(rec["modelId"])["royaltyReceiver"]
    shown = proofmint.show(asset["first"].token_id, rpc_url=anvil.url, workspace=asset["ws"])
    assert shown.royalty["split"] == [{"payee": a, "bps": b} for a, b in SPLIT]


def test_the_registration_carries_the_models_terms(asset, zoo, anvil):
    _, reg = _meta(asset, anvil)
    assert reg["modelURI"].startswith("ipfs://") and reg["metadataURI"].startswith("ipfs://")
    assert reg["trainingDataURI"].startswith("ipfs://") and reg["trainingDataRoot"] != "0x" + "00" * 32
    assert reg["version"] == "1.0.0" and reg["parentModel"] == "0x" + "00" * 32
    assert reg["license"] == {"commercialUse": True, "derivativesAllowed": True, "attributionRequired": True,
                              "parentShareBps": PARENT_SHARE, "proverShareBps": 0}
    manifest = json.loads(ContentStore(asset["ws"]).path(cid_from_uri(reg["trainingDataURI"])).read_text())
    assert manifest == json.loads(Path(zoo["generator"].training).read_text())


def test_export_car_holds_everything_the_token_refers_to(asset, anvil, tmp_path):
    car = proofmint.export_car(asset["first"].token_id, out=tmp_path / "t.car", rpc_url=anvil.url,
                               workspace=asset["ws"])
    meta, reg = _meta(asset, anvil)
    for u in (asset["first"].token_uris[0], meta["image"], meta["aigc_data"], reg["modelURI"],
              reg["metadataURI"], reg["trainingDataURI"], meta["proof"]["uri"]):
        assert cid_from_uri(u) in car.roots
    roots = subprocess.run([str(IPFS_CAR), "roots", car.car], capture_output=True, text=True, check=True)
    assert roots.stdout.split() == car.roots
