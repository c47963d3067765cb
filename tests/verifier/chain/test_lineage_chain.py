"""Proof-backed lineage on a real anvil: the upsampler (compiled --input-from the generator)
is registered with the generator's registration as its ``inputFrom``; a token of it naming a
generator token as its parent mints only when its proven input is that token's proven output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

import proofmint
from proofmint.errors import TransactionRevertedError, VerificationError
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.records import deployment
from proofmint.verifier.content.store import ContentStore, cid_from_uri
from proofmint.verifier.node.explorer import Explorer

from ...circuits.test_lineage import half_image_model
from ...conftest import run_cli
from .test_onchain import commit_by_hand, model_id
from .test_trust import _registration


@pytest.fixture(scope="module")
def lineage(zoo, circuits, anvil, tmp_path_factory):
    """A workspace of its own on the session's anvil (its own registry and token): the
    generator and the upsampler (compiled --input-from it) deployed; a fresh generator token
    (the parent); a child proof made from its output and a forged one made from another image
    (the parent's pixels reversed: as valid an input, not the parent's output)."""
    root = tmp_path_factory.mktemp("lineage")
    ws = Workspace.resolve(root / "ws")
    gen = circuits["generator"]
    shutil.copytree(Path(gen.package.dir), ws.circuit_dir(gen.circuit_id))  # keys made once per session
    up = proofmint.models_export("upsampler", out=root / "up")
    child = proofmint.compile(up.onnx, input_from=gen.circuit_id, workspace=ws)
    gen_dep = proofmint.deploy(gen.circuit_id, rpc_url=anvil.url, workspace=ws)
    child_dep = proofmint.deploy(child.circuit_id, rpc_url=anvil.url, workspace=ws)
    calib = json.loads(open(zoo["generator"].calibration).read())["input_data"][0]
    seed = root / "seed.json"
    seed.write_text(json.dumps({"input_data": [calib[14 * 7:14 * 8]]}))
    parent_proof = proofmint.prove(gen.circuit_id, input=seed, out=root / "parent.json", workspace=ws).bundles[0]
    parent = proofmint.mint(parent_proof, rpc_url=anvil.url, workspace=ws)
    image = load_bundle(parent_proof).outputs[0]
    proofs = {}
    for name, pixels in (("genuine", image), ("forged", image[::-1])):
        (root / f"{name}-in.json").write_text(json.dumps({"input_data": [pixels]}))
        proofs[name] = proofmint.prove(child.circuit_id, input=root / f"{name}-in.json", out=root / f"{name}.json",
                                       workspace=ws).bundles[0]
    return {"ws": ws, "child": child, "gen_dep": gen_dep, "child_dep": child_dep, "parent": parent,
            "parent_proof": parent_proof, **proofs}


def test_the_registration_names_the_model_its_input_is_from(lineage, anvil):
    ws = lineage["ws"]
    gen_id = "0x" + model_id(ws, lineage["gen_dep"].circuit_id).hex()
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        reg = d.model("0x" + model_id(ws, lineage["child"].circuit_id).hex())
        outputs = d.model(gen_id)["outputCount"]
    assert reg["inputFrom"] == gen_id
    print(f"\ngas: register the upsampler (inputFrom set) {lineage['child_dep'].gas['register_model']:,}")
    assert (reg["batchSize"], reg["inputCount"]) == (1, outputs)


def test_a_child_made_from_its_parents_output_mints_with_lineage_proven(lineage, anvil):
    parent, ws = lineage["parent"], lineage["ws"]
    minted = proofmint.mint(lineage["genuine"], parent=parent.token_id, rpc_url=anvil.url, workspace=ws)
    print(f"\ngas: generator mint (no parent) {parent.gas_used['mint']:,}; "
          f"upsampler mint with proven lineage {minted.gas_used['mint']:,}")
    view = proofmint.show(minted.token_id, rpc_url=anvil.url, workspace=ws)
    assert view.record["parent"] == parent.token_id and view.record["lineageProven"]
    assert view.lineage == "lineage proven"
    assert proofmint.show(parent.token_id, rpc_url=anvil.url, workspace=ws).lineage == ""
    verdict = proofmint.verify_asset(minted.token_id, rpc_url=anvil.url, workspace=ws)
    assert verdict.checks["lineage"].ok and verdict.checks["lineage"].detail.startswith("lineage proven")
    assert verdict.checks["accuracy attestation"].ok  # the attestation of a genuine token holds
    assert verdict.valid, {k: v.detail for k, v in verdict.checks.items() if not v.ok}
    shown = run_cli("show", str(minted.token_id), "--rpc-url", anvil.url, "--workspace", str(ws.root))
    assert shown.returncode == 0 and f"parent token {parent.token_id}: lineage proven" in shown.stderr
    # the explorer's token page says the same, in its Provenance block, beside the recorded error
    page = Explorer(ws, anvil.url, None).token(str(minted.token_id))
    provenance = page[page.index("<h2>Provenance</h2>"):]
    assert "lineage proven" in provenance and "lineage declared" not in provenance
    assert f"{view.record['errorPpm'] / 10_000:.4f} % of span" in provenance


def test_a_forged_lineage_is_refused_before_any_transaction_in_one_line(lineage, anvil):
    parent, ws = lineage["parent"].token_id, lineage["ws"]
    with pytest.raises(VerificationError, match=f"input is not token {parent}'s output"):
        proofmint.mint(lineage["forged"], parent=parent, rpc_url=anvil.url, workspace=ws)
    r = run_cli("mint", str(lineage["forged"]), "--parent", str(parent), "--rpc-url", anvil.url,
                "--workspace", str(ws.root))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(lines) == 1 and f"is not token {parent}'s output" in lines[0], r.stderr


def test_a_forged_lineage_is_refused_on_chain(lineage, anvil):
    """Past the CLI's check, by hand: the mint transaction itself reverts."""
    parent, ws = lineage["parent"].token_id, lineage["ws"]
    bundle, pkg = load_bundle(lineage["forged"]), lineage["child"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        mid = model_id(ws, pkg.circuit_id)
        request, instances = commit_by_hand(c, d.token, d.abi, bundle, pkg, mid, parent=parent)
        with pytest.raises(TransactionRevertedError, match=rf"ProvenanceTokenLineageMismatch\({parent},"):
            c.transact(d.token.functions.mint(request, bundle.proof_bytes, instances, []), d.abi)
        request["parent"] = 0  # the same proof without the parent: an upsampling of its own input
        receipt = c.transact(d.token.functions.mint(request, bundle.proof_bytes, instances, []), d.abi)
        print(f"\ngas: upsampler mint without a parent {receipt['gasUsed']:,}")
        tid = d.token.functions.totalMinted().call()
        assert d.token_record(tid)["parent"] == 0


@pytest.fixture(scope="module")
def sliced(lineage, zoo, anvil, tmp_path_factory):
    """A model that reads the bottom half of the generator's image (a named slice of its output:
    instances 32..63), deployed beside it; a proof of it on the parent token's bottom half, and a
    forged one on its top half (the parent's output too, but not the slice registered)."""
    root, ws = tmp_path_factory.mktemp("sliced"), lineage["ws"]
    gen = lineage["gen_dep"].circuit_id
    name = onnx.load(zoo["generator"].onnx).graph.output[0].name
    child = proofmint.compile(half_image_model(root / "half.onnx"), input_from=f"{gen}:{name}[32:64]", workspace=ws)
    dep = proofmint.deploy(child.circuit_id, rpc_url=anvil.url, workspace=ws)
    image = load_bundle(lineage["parent_proof"]).outputs[0]
    proofs = {}
    for label, pixels in (("genuine", image[32:]), ("forged", image[:32])):
        (root / f"{label}-in.json").write_text(json.dumps({"input_data": [pixels]}))
        proofs[label] = proofmint.prove(child.circuit_id, input=root / f"{label}-in.json", out=root / f"{label}.json",
                                        workspace=ws).bundles[0]
    return {"ws": ws, "child": child, "dep": dep, **proofs}


def test_a_child_of_a_named_slice_mints_with_lineage_proven(lineage, sliced, anvil):
    parent, ws = lineage["parent"], sliced["ws"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        reg = deployment(c).model("0x" + model_id(ws, sliced["child"].circuit_id).hex())
    assert (reg["inputFromStart"], reg["inputCount"]) == (32, 32)
    # the parent's outputs come from the chain (its mint's ProofPublished event), not from a file:
    # with the parent's published bundle out of reach, the child still mints
    store = ContentStore(ws).path(cid_from_uri(proofmint.show(parent.token_id, rpc_url=anvil.url,
                                                              workspace=ws).record["proofURI"]))
    aside = store.rename(store.with_name(store.name + ".aside"))
    try:
        minted = proofmint.mint(sliced["genuine"], parent=parent.token_id, rpc_url=anvil.url, workspace=ws)
    finally:
        aside.rename(store)
    print(f"\ngas: half-image mint with a proven sliced lineage (the parent's 64 outputs in calldata) "
          f"{minted.gas_used['mint']:,}")
    view = proofmint.show(minted.token_id, rpc_url=anvil.url, workspace=ws)
    assert view.record["lineageProven"] and view.lineage == "lineage proven"
    verdict = proofmint.verify_asset(minted.token_id, rpc_url=anvil.url, workspace=ws)
    lin = verdict.checks["lineage"]
    assert lin.ok and lin.detail.startswith("lineage proven") and "from position 32" in lin.detail, lin.detail
    assert verdict.valid, {k: v.detail for k, v in verdict.checks.items() if not v.ok}
    page = Explorer(ws, anvil.url, None).token(str(minted.token_id))
    provenance = page[page.index("<h2>Provenance</h2>"):]
    assert "lineage proven" in provenance and "lineage declared" not in provenance


def test_a_forged_slice_is_refused_locally_and_on_chain(lineage, sliced, anvil):
    """The top half is as much the parent's output as the bottom, but not the slice registered:
    the CLI refuses it before any transaction; by hand the mint reverts, whether it carries the
    parent's true outputs or outputs edited so that the slice matches."""
    parent, ws = lineage["parent"].token_id, sliced["ws"]
    with pytest.raises(VerificationError, match=rf"input is not token {parent}'s output \(its 32 output instances from position 32\)"):
        proofmint.mint(sliced["forged"], parent=parent, rpc_url=anvil.url, workspace=ws)
    bundle, pkg = load_bundle(sliced["forged"]), sliced["child"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        gen_reg = d.model("0x" + model_id(ws, lineage["gen_dep"].circuit_id).hex())
        start = gen_reg["outputStart"]
        true_outputs = load_bundle(lineage["parent_proof"]).instance_words[start:start + gen_reg["outputCount"]]
        forged_in = bundle.instance_words[pkg.layout.input_start:pkg.layout.input_start + 32]
        request, instances = commit_by_hand(c, d.token, d.abi, bundle, pkg, model_id(ws, pkg.circuit_id), parent=parent)
        for outputs, error in ((true_outputs, rf"ProvenanceTokenLineageMismatch\({parent},"),
                               (true_outputs[:32] + forged_in, rf"ProvenanceTokenParentOutputsMismatch\({parent},"),
                               ([], rf"ProvenanceTokenParentOutputsMismatch\({parent},")):
            with pytest.raises(TransactionRevertedError, match=error):
                c.transact(d.token.functions.mint({**request, "parentOutputs": outputs}, bundle.proof_bytes,
                                                  instances, []), d.abi)


def test_a_slice_past_the_parents_outputs_is_not_registered(lineage, sliced, anvil):
    ws, pkg = sliced["ws"], sliced["child"].package
    gen_id = model_id(ws, lineage["gen_dep"].circuit_id)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        for change in ({"inputFrom": gen_id, "inputFromStart": 33},  # 33 + 32 past the generator's 64
                       {"inputFromStart": 32}):  # a start without a parent model
            reg = _registration(pkg, sliced["dep"].verifier, circuitHash=bytes.fromhex("ab" * 32), **change)
            with pytest.raises(TransactionRevertedError, match="ModelRegistryInvalidLineage"):
                c.transact(d.registry.functions.registerModel(reg, [], [c.address], [10_000]), d.abi)


def test_a_node_that_serves_no_old_logs_reads_the_parents_outputs_from_its_bundle(lineage, sliced, anvil,
                                                                                  monkeypatch):
    """Where the chain's node serves no ProofPublished log for the parent (a pruned or
    range-limited RPC node: its get_logs fails), the parent's outputs come from its published
    bundle, checked against the recorded outputs hash: the same words as the event's. Without the
    bundle either, one line that says what to set."""
    from proofmint.errors import ContentError
    from proofmint.verifier.chain import lineage as lineage_mod
    from proofmint.verifier.content.store import Source

    parent, ws = lineage["parent"].token_id, sliced["ws"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        prec = d.token_record(parent)
        reg = d.model(prec["modelId"])
        from_event = lineage_mod.parent_outputs(d, parent, prec, reg, Source.of(ws), ws)

        def no_logs(*args, **kwargs):
            raise ValueError({"code": -32000, "message": "block range too large"})

        monkeypatch.setattr(type(d.token.events.ProofPublished()), "get_logs", no_logs)
        assert lineage_mod.parent_outputs(d, parent, prec, reg, Source.of(ws), ws) == from_event
        assert len(from_event) == reg["outputCount"] == 64
        store = ContentStore(ws).path(cid_from_uri(prec["proofURI"]))
        fetched = ws.fetched_bundle(prec["proofHash"])
        fetched.unlink(missing_ok=True)
        aside = store.rename(store.with_name(store.name + ".aside"))
        try:
            with pytest.raises(ContentError, match=r"served no ProofPublished event .* set PROOFMINT_GATEWAY"):
                lineage_mod.parent_outputs(d, parent, prec, reg, Source.of(ws), ws)
        finally:
            aside.rename(store)
