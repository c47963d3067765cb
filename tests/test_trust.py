"""The trust model, attacked as an attacker would (on anvil, with real proofs): forged, aliased
and squatted registrations, unbound layouts, weights and outputs, URI injection, padding, royalties."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from proofmint.circuits.compile import compile as compile_model
from proofmint.errors import TransactionRevertedError, UsageError
from proofmint.prover import load_bundle, prove
from proofmint.store import Workspace, atomic_write_json
from proofmint.verifier import asset, evm, verify
from proofmint.verifier.chain import connect, dev_keys

from .test_onchain import commit_by_hand, model_id

ALWAYS_TRUE = "0x69600160005260206000f3600052600a6016f3"  # deploys 10 bytes that return true
EVE = Account.from_key(dev_keys()[2])
MALLORY = Account.from_key(dev_keys()[4])  # another attacker: one registration per registrant and circuit
TRENT = Account.from_key(dev_keys()[5])


def _contracts(c, ws, deployed):
    built = evm.build_contracts(Workspace(ws))
    registry = c.w3.eth.contract(address=deployed.registry, abi=built["ModelRegistry"]["abi"])
    token = c.w3.eth.contract(address=deployed.token, abi=built["ProvenanceToken"]["abi"])
    return registry, token, built["ProvenanceToken"]["abi"] + built["ModelRegistry"]["abi"]


def _fresh_mlp_proof(zoo, circuits, ws, tmp_path, row: int) -> str:
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    inp = tmp_path / f"x{row}.json"
    inp.write_text(json.dumps({"input_data": [calib[13 * row:13 * row + 13]]}))
    return prove(circuits["mlp"].circuit_id, inp, tmp_path / f"p{row}.json", workspace=ws).bundles[0]


def _registration(pkg, verifier: str, **changes) -> tuple:
    reg = list(evm.registration(pkg, verifier, evm.verifier_artifact(pkg)))
    names = ["circuitHash", "onnxHash", "vkHash", "verifier", "royaltyBps", "batchSize", "inputStart",
             "inputCount", "outputStart", "outputCount", "instanceCount", "inputHashed", "vkaDigest",
             "metadataURI", "licenseURI"]
    for k, v in changes.items():
        reg[names.index(k)] = v
    return tuple(reg)


def _mint_through(c, registry, token, abi, account, registration, bundle, pkg, ws, commitment=None) -> int:
    """``account`` registers ``registration`` and mints ``bundle`` through it; the bundle is then
    published to the workspace's asset store (whoever checks a token can fetch its bundle).
    Returns the token id."""
    c.transact(registry.functions.registerModel(registration), abi, account=account)
    mid = registry.functions.modelIdOf(account.address, registration[0]).call()
    request, instances = commit_by_hand(c, token, abi, bundle, pkg, mid, account=account)
    if commitment is not None:
        request = request[:3] + (commitment,) + request[4:]
    proof = bytes(bundle.ezkl_proof["proof"])
    c.transact(token.functions.mint(request, proof, instances, []), abi, account=account)
    inference = token.functions.inferenceIdOf(mid, instances, proof).call()
    atomic_write_json(asset._asset_store(Workspace(ws), asset.keccak(proof).hex(), inference.hex()),
                      bundle.to_dict())
    return token.functions.totalMinted().call()


def test_a_forged_verifier_is_invalid_in_verify_asset(deployed, circuits, proofs, ws, anvil, tmp_path):
    """Eve registers an always-true contract under the real model's hashes and mints made-up
    outputs. The chain can't tell; verify-asset can, and the token names Eve's registration."""
    pkg = circuits["mlp"].package
    bundle = json.loads(open(proofs["mlp"]).read())
    bundle["ezkl_proof"]["instances"][0][-1] = bundle["ezkl_proof"]["instances"][0][-2]  # made-up output
    forged = load_bundle(_write(tmp_path / "forged.json", bundle))
    with connect(anvil.url, ws) as c:
        registry, token, abi = _contracts(c, ws, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        fake = c.w3.eth.contract(abi=[], bytecode=ALWAYS_TRUE)
        addr = c.transact(fake.constructor(), [], account=EVE)["contractAddress"]
        token_id = _mint_through(c, registry, token, abi, EVE, _registration(pkg, addr), forged, pkg, ws)
    shown = asset.show(token_id, rpc_url=anvil.url, workspace=ws)
    assert shown["metadata"]["model_owner"].lower() == EVE.address.lower()  # not the model's owner
    verdict = asset.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    assert not verdict.valid
    assert not verdict.checks["verifier code"]["ok"] and not verdict.checks["local verify"]["ok"]
    assert verdict.checks["model file"]["ok"] and verdict.checks["layout"]["ok"]


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_an_aliased_registration_cannot_mint_an_inference_twice(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Eve registers the victim's circuit under a fresh registration pointing at the genuine
    verifier, with herself as owner at the maximum royalty, and replays the victim's proof."""
    pkg = circuits["mlp"].package
    victim = asset.mint(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 20), rpc_url=anvil.url, workspace=ws)
    bundle = load_bundle(asset._asset_store(Workspace(ws), *_record_keys(victim.token_id, anvil, ws)))
    with connect(anvil.url, ws) as c:
        registry, token, abi = _contracts(c, ws, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": MALLORY.address, "value": 10**18})
        c.transact(registry.functions.registerModel(
            _registration(pkg, deployed["mlp"].verifier, royaltyBps=2_500)), abi, account=MALLORY)
        alias = registry.functions.modelIdOf(MALLORY.address, bytes.fromhex(pkg.circuit_id)).call()
        assert alias != model_id(ws, pkg.circuit_id)
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenAlreadyMinted"):
            request, instances = commit_by_hand(c, token, abi, bundle, pkg, alias, account=MALLORY)
            c.transact(token.functions.mint(request, bytes(bundle.ezkl_proof["proof"]), instances, []),
                       abi, account=MALLORY)


def _record_keys(token_id, anvil, ws):
    rec = asset.show(token_id, rpc_url=anvil.url, workspace=ws)["record"]
    return rec["proofHash"], rec["inferenceId"]


def test_registrations_are_bound_to_their_registrant_so_nothing_can_be_squatted(deployed, circuits, ws, anvil):
    circuit = bytes.fromhex("ab" * 32)
    pkg = circuits["mlp"].package
    with connect(anvil.url, ws) as c:
        registry, _, abi = _contracts(c, ws, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        first = _registration(pkg, deployed["mlp"].verifier, circuitHash=circuit)
        c.transact(registry.functions.registerModel(first), abi, account=EVE)  # Eve goes first
        c.transact(registry.functions.registerModel(first), abi)  # the owner's still lands
        ids = {registry.functions.modelIdOf(a, circuit).call() for a in (EVE.address, c.address)}
        assert len(ids) == 2 and all(registry.functions.isRegistered(i).call() for i in ids)
        assert registry.functions.model(registry.functions.modelIdOf(c.address, circuit).call()).call()[0] == c.address
        with pytest.raises(TransactionRevertedError, match="ModelRegistryAlreadyRegistered"):
            c.transact(registry.functions.registerModel(first), abi)


@pytest.mark.parametrize("change,error", [
    ({"outputCount": 0}, "ModelRegistryInvalidLayout"),  # outputs bound to nothing
    ({"outputStart": 5}, "ModelRegistryInvalidLayout"),  # overlaps the 13 input instances
    ({"instanceCount": 10}, "ModelRegistryInvalidLayout"),  # layout past the instances
    ({"royaltyBps": 10_000}, "ModelRegistryInvalidRoyalty"),  # over the 25 % cap
])
def test_unsound_layouts_and_royalties_are_refused(change, error, deployed, circuits, ws, anvil):
    pkg = circuits["mlp"].package
    with connect(anvil.url, ws) as c:
        registry, _, abi = _contracts(c, ws, deployed["mlp"])
        reg = _registration(pkg, deployed["mlp"].verifier, circuitHash=bytes.fromhex("cd" * 32), **change)
        with pytest.raises(TransactionRevertedError, match=error):
            c.transact(registry.functions.registerModel(reg), abi)


def test_model_ownership_moves_in_two_steps_and_royalties_follow(deployed, circuits, proofs, ws, anvil):
    pkg = circuits["lenet"].package
    mid = model_id(ws, pkg.circuit_id)
    with connect(anvil.url, ws) as c:
        registry, token, abi = _contracts(c, ws, deployed["lenet"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        with pytest.raises(TransactionRevertedError, match="ModelRegistryUnauthorized"):
            c.transact(registry.functions.transferModelOwnership(mid, EVE.address), abi, account=EVE)
        c.transact(registry.functions.transferModelOwnership(mid, EVE.address), abi)
        assert registry.functions.model(mid).call()[0] == c.address  # not until accepted
        c.transact(registry.functions.acceptModelOwnership(mid), abi, account=EVE)
        assert registry.functions.model(mid).call()[0] == EVE.address
        c.transact(registry.functions.transferModelOwnership(mid, c.address), abi, account=EVE)
        c.transact(registry.functions.acceptModelOwnership(mid), abi)


def test_royalty_info_of_a_missing_token_reverts(deployed, ws, anvil):
    with connect(anvil.url, ws) as c:
        _, token, abi = _contracts(c, ws, deployed["mlp"])
        with pytest.raises(TransactionRevertedError, match="ERC721NonexistentToken"):
            c.call(token.functions.royaltyInfo(10**9, 10_000), abi)


def test_a_proof_uri_that_could_break_the_metadata_is_refused(deployed, circuits, zoo, ws, anvil, tmp_path):
    p = _fresh_mlp_proof(zoo, circuits, ws, tmp_path, 21)
    injected = 'ipfs://x","model_id":"0xabab","name":"Official FamousModel output","zz":"'
    with pytest.raises(TransactionRevertedError, match="ProvenanceTokenUnsafeURI"):
        asset.mint(p, proof_uri=injected, rpc_url=anvil.url, workspace=ws)


def test_a_parent_needs_its_owners_consent(deployed, circuits, zoo, ws, anvil, tmp_path):
    first = asset.mint(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 22), rpc_url=anvil.url, workspace=ws)
    pkg = circuits["mlp"].package
    child = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 23))
    with connect(anvil.url, ws) as c:
        _, token, abi = _contracts(c, ws, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        request, instances = commit_by_hand(c, token, abi, child, pkg, model_id(ws, pkg.circuit_id), account=EVE)
        request = request[:2] + (first.token_id,) + request[3:]
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenParentNotAuthorized"):
            c.transact(token.functions.mint(request, bytes(child.ezkl_proof["proof"]), instances, []),
                       abi, account=EVE)


def test_hashed_params_are_refused_until_they_are_bound(zoo, ws):
    with pytest.raises(UsageError, match="does not bind the weights"):
        compile_model(zoo["mlp"].onnx, param_visibility="hashed", workspace=ws)


def test_edited_outputs_under_hashed_outputs_are_invalid(zoo, ws, tmp_path):
    c = compile_model(zoo["mlp"].onnx, output_visibility="hashed", workspace=ws)
    bundle = prove(c.circuit_id, zoo["mlp"].input, tmp_path / "h.json", workspace=ws).bundles[0]
    assert verify(bundle, workspace=ws).valid
    data = json.loads(open(bundle).read())
    data["outputs"] = [[999.0, -999.0, 42.0]]
    verdict = verify(_write(tmp_path / "edited.json", data), workspace=ws)
    assert not verdict.valid and "hash to the proven output commitment" in verdict.reason


def test_verify_asset_names_a_registration_that_does_not_match_the_models_artifacts(
        deployed, circuits, zoo, ws, anvil, tmp_path):
    """A registration of the genuine verifier with another model's hashes (say, to claim a
    famous model's name): its tokens verify on-chain, and verify-asset says which fields lie."""
    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 24))
    with connect(anvil.url, ws) as c:
        registry, token, abi = _contracts(c, ws, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": TRENT.address, "value": 10**18})
        token_id = _mint_through(c, registry, token, abi, TRENT, _registration(
            pkg, deployed["mlp"].verifier, onnxHash=b"\x11" * 32, vkHash=b"\x22" * 32), bundle, pkg, ws)
    verdict = asset.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    assert not verdict.valid
    failed = {name for name, c in verdict.checks.items() if not c["ok"]}
    assert failed == {"model file", "verifying key"}, verdict.checks


def test_verify_asset_names_a_registered_layout_the_settings_dont_give(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A registration of the genuine verifier whose layout binds only 12 of the 13 inputs: the
    token's input commitment then says less than the proof does, and verify-asset says so."""
    from eth_utils import keccak

    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 25))
    victor = Account.from_key(dev_keys()[6])
    with connect(anvil.url, ws) as c:
        registry, token, abi = _contracts(c, ws, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": victor.address, "value": 10**18})
        twelve = keccak(b"".join(v.to_bytes(32, "big") for v in asset.evm_instances(bundle)[:12]))
        token_id = _mint_through(c, registry, token, abi, victor, _registration(
            pkg, deployed["mlp"].verifier, inputCount=12), bundle, pkg, ws, commitment=twelve)
    verdict = asset.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    failed = {name for name, c in verdict.checks.items() if not c["ok"]}
    assert not verdict.valid and "layout" in failed and "input commitment" in failed, verdict.checks


@pytest.mark.parametrize("creation,what", [
    ("0x69600260005260206000f3600052600a6016f3", "returns the word 2"),
    ("0x6000600053600160" + "00f3", "returns one byte"),
])
def test_an_odd_verifier_answer_is_a_rejection_not_a_revert(creation, what, deployed, circuits, proofs, ws, anvil):
    pkg = circuits["mlp"].package
    bundle = load_bundle(proofs["mlp"])
    with connect(anvil.url, ws) as c:
        registry, _, abi = _contracts(c, ws, deployed["mlp"])
        odd = c.transact(c.w3.eth.contract(abi=[], bytecode=creation).constructor(), [])["contractAddress"]
        circuit = bytes.fromhex(("e1" if "2" in what else "e2") * 32)
        c.transact(registry.functions.registerModel(_registration(pkg, odd, circuitHash=circuit)), abi)
        mid = registry.functions.modelIdOf(c.address, circuit).call()
        assert registry.functions.checkInference(mid, bytes(bundle.ezkl_proof["proof"]),
                                                 asset.evm_instances(bundle), []).call() is False


def test_a_private_input_is_one_token_per_proof(zoo, ws, anvil, tmp_path):
    """Private inputs commit to nothing: the replay key takes the proof's hash, so the first
    minter of some outputs can't block every other input that gives them."""
    c = compile_model(zoo["mlp"].onnx, input_visibility="private", workspace=ws)
    evm.deploy(c.circuit_id, rpc_url=anvil.url, workspace=ws)
    first, second = (prove(c.circuit_id, zoo["mlp"].input, tmp_path / f"{n}.json", workspace=ws).bundles[0]
                     for n in ("a", "b"))
    assert load_bundle(first).ezkl_proof["instances"] == load_bundle(second).ezkl_proof["instances"]
    a = asset.mint(first, rpc_url=anvil.url, workspace=ws)
    b = asset.mint(second, rpc_url=anvil.url, workspace=ws)
    assert a.token_id != b.token_id
    with pytest.raises(Exception, match="already token"):
        asset.mint(first, rpc_url=anvil.url, workspace=ws)
