"""A segmented model's token as another machine sees it (the `segmented` fixture's LeNet as 3
hashed segments, on the session's anvil): verify-asset from an empty workspace with only the RPC
URL, a gateway and the token address re-derives every segment from the published model and
checks each proof on-chain and locally, with every link; show and the explorer list the
segments; a registration of the genuine segments under another model verifies on-chain and is
named by verify-asset."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from eth_account import Account

import proofmint
from proofmint.store import atomic_write_json, sha256_file
from proofmint.prover.segmented import load_any
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.deploy import registration, segments_of
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.mint import await_commit_age, item_commitments, publish_tokens, statement_of
from proofmint.verifier.chain.records import deployment
from proofmint.verifier.content.gateway import Gateway
from proofmint.verifier.asset.inspect import segmented_checks
from proofmint.verifier.content.publish import token_error_ppm
from proofmint.verifier.content.segmented import encode_proofs, fetch_segmented
from proofmint.verifier.content.store import ContentStore, Source, cid_from_uri, uri
from proofmint.verifier.evm import verifier_artifact
from proofmint.verifier.node.explorer import Explorer

from ...conftest import run_cli
from ..content.test_content import IPFS_CAR

OSCAR = Account.from_key(dev_keys()[7])  # registers the segments under another model
SEGMENT_CHECKS = {"circuit", "segments cut from the model", "verifying key", "model compiles to the key",
                  "verifier code", "layout", "on-chain verify", "on-chain segments", "local verify",
                  "re-run model", "content"}


@pytest.fixture(scope="module")
def token(segmented, anvil) -> dict:
    """The segmented LeNet deployed (a no-op when another module did it) and its second
    inference minted (or found again): the token a third party checks."""
    ws, sid = segmented["ws"], segmented["compile"].circuit_id
    dep = proofmint.deploy(sid, rpc_url=anvil.url, workspace=ws)
    minted = proofmint.mint(segmented["other"], rpc_url=anvil.url, workspace=ws, resume=True)
    return {"deploy": dep, "id": minted.token_id, "ws": ws, "sid": sid}


def _elsewhere(token, anvil, tmp_path, *args: str, token_id: int | None = None) -> tuple:
    """A command from an empty workspace (another machine): only the RPC URL, a gateway over the
    minter's content store and the token contract's address."""
    empty = tmp_path / "elsewhere"
    with Gateway(token["ws"]) as g:
        r = run_cli(*args, str(token_id or token["id"]), "--rpc-url", anvil.url, "--gateway", g.url,
                    "--token", token["deploy"].token, "--workspace", empty, "--json")
    return r, json.loads(r.stdout) if r.stdout.strip() else None


def test_verify_asset_of_a_segmented_token_from_an_empty_workspace(token, segmented, anvil, tmp_path):
    r, verdict = _elsewhere(token, anvil, tmp_path, "verify-asset")
    assert r.returncode == 0 and verdict["valid"], verdict or r.stderr
    checks = verdict["checks"]
    assert SEGMENT_CHECKS <= set(checks) and all(c["ok"] for c in checks.values())
    assert "(3 of 3)" in checks["model compiles to the key"]["detail"]
    assert "(3 of 3)" in checks["verifier code"]["detail"]
    assert "all 2 links hold" in checks["on-chain segments"]["detail"]
    local = checks["local verify"]["detail"]
    assert all(f"segment {i}: proof verifies" in local for i in range(3))
    assert "link 0->1: 1 hash(s) equal" in local and "link 1->2: 1 hash(s) equal" in local
    fetched = tmp_path / "elsewhere" / "fetched"
    assert {p.name for p in fetched.rglob("*") if p.is_dir() and re.fullmatch(r"[0-9a-f]{64}", p.name)} == \
        {token["sid"], *segmented["compile"].package.segments}
    assert not (tmp_path / "elsewhere" / "circuits").exists()  # nothing of the minter's was there
    shown, view = _elsewhere(token, anvil, tmp_path, "show")
    assert shown.returncode == 0, shown.stderr
    held = view["segments"]
    assert [s["circuitHash"][2:] for s in held["segments"]] == segmented["compile"].package.segments
    assert held["links"] == [{"outputs": [64], "inputs": [0]}, {"outputs": [1], "inputs": [0]}]


def test_the_explorer_shows_the_segments_of_a_segmented_token(token, segmented, anvil):
    page = Explorer(token["ws"], anvil.url, None).token(str(token["id"]))
    block = page[page.index("<div class=panel id=segments>"):]
    block = block[:block.index("</dl>")]
    assert "3 linked segment proofs, hashed links" in block
    rows = block.split("<dt>segment ")[1:]
    pkgs = segmented["compile"].package.packages(token["ws"], verify_only=True)
    assert len(rows) == 3
    for i, (row, p) in enumerate(zip(rows, pkgs)):
        assert row.startswith(f"{i}</dt>") and p.circuit_id in row
        assert f"logrows {p.logrows} · {p.layout.instance_count} instances" in row


def test_genuine_segments_registered_under_another_model_verify_on_chain_but_not_as_an_asset(
        token, segmented, zoo, anvil, tmp_path):
    """Oscar registers the genuine segments (their verifiers, keys, links and published
    circuits) as another model (the zoo MLP's ONNX) and mints a fresh inference through it.
    Every proof and link is genuine, so the chain accepts it; verify-asset finds that the
    registered model is not the one the segments were cut from."""
    ws, sid = token["ws"], token["sid"]
    calib = json.loads(open(zoo["lenet"].calibration).read())["input_data"][0]
    x = tmp_path / "x3.json"
    x.write_text(json.dumps({"input_data": [calib[64 * 11:64 * 12]]}))
    fresh = proofmint.prove(sid, input=x, out=tmp_path / "p3.json", workspace=ws).bundles[0]
    loaded = load_any(fresh)
    chained, view = statement_of(ws, loaded)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        entry = d.entry(sid)
        genuine = d.model(entry["model_id"])
        verifiers = [s["address"] for s in entry["segments"]]
        arts = [verifier_artifact(p) for p in view.segments]
        reg = registration(view, verifiers[0], arts) | {
            "onnxHash": bytes.fromhex(sha256_file(zoo["mlp"].onnx)),
            "modelURI": uri(ContentStore(ws).add_file(zoo["mlp"].onnx)), "metadataURI": genuine["metadataURI"]}
        c.transact(d.registry.functions.registerSegmentedModel(
            reg, segments_of(view, verifiers, arts), [k.solidity() for k in view.links], [], [OSCAR.address],
            [10_000]), d.abi, account=OSCAR)
        mid = d.registry.functions.modelIdOf(OSCAR.address, reg["circuitHash"]).call()
        words = chained.instance_words
        inference = d.token.functions.inferenceIdOf(mid, words).call()
        salt = os.urandom(32)
        receipt = c.transact(d.token.functions.commit(
            d.token.functions.commitmentFor(OSCAR.address, inference, salt).call()), d.abi, account=OSCAR)
        await_commit_age(d, receipt)
        bundle_file = atomic_write_json(ws.path("hand-minted", "oscar.json"), loaded.to_dict())
        proof_uri, contents = publish_tokens(d, chained, view, bundle_file, model_id="0x" + bytes(mid).hex(),
                                             creator=OSCAR.address)
        request = {"modelId": mid, "to": OSCAR.address, "parent": 0, "inputCommitment": item_commitments(chained, view)[0],
                   "salt": salt, "proofURI": proof_uri, "count": 1, "metadata": [t.digest for t in contents],
                   "errorPpm": [token_error_ppm(chained, view, 0)], "parentOutputs": []}
        c.transact(d.token.functions.mint(request, encode_proofs(loaded), words, []), d.abi, account=OSCAR)
        token_id = d.token.functions.totalMinted().call()
        assert d.token_record(token_id)["modelId"] == "0x" + bytes(mid).hex()
    verdict = proofmint.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    failed = {name for name, check in verdict.checks.items() if not check.ok}
    assert not verdict.valid and {"circuit", "segments cut from the model", "model compiles to the key"} <= failed
    assert not {"model file", "verifying key", "verifier code", "layout", "on-chain verify", "on-chain segments",
                "local verify"} & failed, verdict.checks
    owner = next(a for a in verdict.registration["alias_of"] if a["id"] == entry["model_id"])
    assert {"circuit hash", "vk hash", "verifier key"} <= set(owner["same"])


def test_verify_asset_names_registered_links_the_segments_dont_give(token, anvil):
    """The chain checks the links a registration names, whatever they are: verify-asset holds
    them to the ones the published segments' settings give (its layout check)."""
    ws = token["ws"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        mid = d.entry(token["sid"])["model_id"]
        reg, held = d.model(mid), d.segments(mid)
        view = fetch_segmented(Source.of(ws), reg["metadataURI"], ws.fetched_circuits(), ws)
        model = view.path / "model.onnx"
        assert segmented_checks(reg, held, view, model, c)["layout"].ok
        for links in ([held["links"][0], {"outputs": [0], "inputs": [0]}], held["links"][:1]):
            checks = segmented_checks(reg, {**held, "links": links}, view, model, c)
            assert not checks["layout"].ok and checks["verifier code"].ok and checks["circuit"].ok


def test_export_car_of_a_segmented_token_holds_every_segment(token, segmented, anvil, tmp_path):
    car = proofmint.export_car(token["id"], out=tmp_path / "t.car", rpc_url=anvil.url, workspace=token["ws"])
    with connect(rpc_url=anvil.url, workspace=token["ws"]) as c:
        reg = deployment(c).model(deployment(c).entry(token["sid"])["model_id"])
    source = Source.of(token["ws"])
    manifest = source.fetch_json(reg["metadataURI"])
    wanted = [reg["metadataURI"], *manifest["files"].values(), *manifest["segments"]]
    wanted += [u for m in manifest["segments"] for u in source.fetch_json(m)["files"].values()]
    assert len(manifest["segments"]) == 3 and {cid_from_uri(u) for u in wanted} <= set(car.roots)
    roots = subprocess.run([str(IPFS_CAR), "roots", car.car], capture_output=True, text=True, check=True)
    assert roots.stdout.split() == car.roots
