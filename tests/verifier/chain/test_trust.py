"""The trust model, attacked as an attacker would (on anvil, with real proofs): forged, aliased
and squatted registrations, unbound layouts, weights and outputs, URI injection, padding, royalties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

import proofmint
from proofmint.errors import ChainError, TransactionRevertedError, UsageError
from proofmint.prover import load_bundle
from proofmint.store import Workspace, atomic_write_json
from proofmint.verifier.evm import verifier_artifact
from proofmint.verifier.content.publish import publish_circuit
from proofmint.verifier.content.store import ContentStore
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.deploy import registration as registration_of
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.records import deployment

from .test_onchain import commit_by_hand, model_id

ALWAYS_TRUE = "0x69600160005260206000f3600052600a6016f3"  # deploys 10 bytes that return true
EVE = Account.from_key(dev_keys()[2])
MALLORY = Account.from_key(dev_keys()[4])  # another attacker: one registration per registrant and circuit
TRENT = Account.from_key(dev_keys()[5])


def _contracts(c, deployed):
    """The registry, token and both ABIs of the deployment ``deployed`` (a DeployResult) names."""
    d = deployment(c)
    assert (d.registry.address, d.token.address) == (deployed.registry, deployed.token)
    return d.registry, d.token, d.abi


def _model(c, mid: bytes) -> dict:
    """The registry's Model of ``mid``: the registration's fields, owner and verifierCodeHash, by name."""
    return deployment(c).model("0x" + bytes(mid).hex())


def _fresh_mlp_proof(zoo, circuits, ws, tmp_path, row: int) -> str:
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    inp = tmp_path / f"x{row}.json"
    inp.write_text(json.dumps({"input_data": [calib[13 * row:13 * row + 13]]}))
    return proofmint.prove(circuits["mlp"].circuit_id, input=inp, out=tmp_path / f"p{row}.json",
                           workspace=ws).bundles[0]


REGISTRATION_FIELDS = ["circuitHash", "onnxHash", "vkHash", "verifier", "royaltyBps", "batchSize", "inputStart",
                       "inputCount", "outputStart", "outputCount", "instanceCount", "inputHashed", "vkaDigest",
                       "metadataURI", "licenseURI", "modelURI", "trainingDataRoot", "trainingDataURI",
                       "version", "parentModel", "license", "inputFrom", "inputFromStart", "fidelity"]  # the Solidity Registration's fields


def _registration(pkg, verifier: str, **changes) -> dict:
    """The genuine registration of ``pkg`` under ``verifier`` (its circuit published to the
    package's workspace, as deploy does), with ``changes`` (by field name)."""
    content = publish_circuit(pkg, ContentStore(Workspace(Path(pkg.dir).parent.parent)))
    reg = registration_of(pkg, verifier, verifier_artifact(pkg), content=content)
    assert sorted(reg) == sorted(REGISTRATION_FIELDS), sorted(reg)
    unknown = set(changes) - set(reg)
    assert not unknown, f"not Registration fields: {sorted(unknown)}"
    return {**reg, **changes}


def _mint_through(c, registry, token, abi, account, registration, bundle, pkg, ws, commitment=None) -> int:
    """``account`` registers ``registration`` and mints ``bundle`` through it; the bundle is then
    published to the workspace's asset store (whoever checks a token can fetch its bundle).
    Returns the token id."""
    c.transact(registry.functions.registerModel(registration, [], [account.address], [10_000]), abi, account=account)
    mid = registry.functions.modelIdOf(account.address, registration["circuitHash"]).call()
    assert _model(c, mid)["owner"] == account.address
    request, instances = commit_by_hand(c, token, abi, bundle, pkg, mid, account=account)
    if commitment is not None:
        request["inputCommitment"] = commitment
    proof = bundle.proof_bytes
    c.transact(token.functions.mint(request, proof, instances, []), abi, account=account)
    inference = token.functions.inferenceIdOf(mid, instances).call()
    atomic_write_json(Workspace.resolve(ws).minted_bundle(keccak(proof).hex(), inference.hex()),
                      bundle.to_dict())
    return token.functions.totalMinted().call()


def test_a_forged_verifier_is_invalid_in_verify_asset(deployed, circuits, proofs, ws, anvil, tmp_path):
    """Eve registers an always-true contract under the real model's hashes and mints made-up
    outputs. The chain can't tell; verify-asset can, and the token names Eve's registration."""
    pkg = circuits["mlp"].package
    bundle = json.loads(open(proofs["mlp"]).read())
    bundle["ezkl_proof"]["instances"][0][-1] = bundle["ezkl_proof"]["instances"][0][-2]  # made-up output
    forged = load_bundle(_write(tmp_path / "forged.json", bundle))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        fake = c.w3.eth.contract(abi=[], bytecode=ALWAYS_TRUE)
        addr = c.transact(fake.constructor(), [], account=EVE)["contractAddress"]
        token_id = _mint_through(c, registry, token, abi, EVE, _registration(pkg, addr), forged, pkg, ws)
    shown = proofmint.show(token_id, rpc_url=anvil.url, workspace=ws)
    eve_model = "0x" + bytes(registry.functions.modelIdOf(EVE.address, bytes.fromhex(pkg.circuit_id)).call()).hex()
    assert shown.record["modelId"] == shown.metadata["model"]["registration"] == eve_model  # not the owner's
    verdict = proofmint.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    assert not verdict.valid
    assert not verdict.checks["verifier code"].ok and not verdict.checks["local verify"].ok
    assert verdict.checks["model file"].ok and verdict.checks["layout"].ok


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_an_aliased_registration_cannot_mint_an_inference_twice(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Eve registers the victim's circuit under a fresh registration pointing at the genuine
    verifier, with herself as owner at the maximum royalty, and replays the victim's proof."""
    pkg = circuits["mlp"].package
    victim = proofmint.mint(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 20), rpc_url=anvil.url, workspace=ws)
    bundle = load_bundle(Workspace.resolve(ws).minted_bundle(*_record_keys(victim.token_id, anvil, ws)))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": MALLORY.address, "value": 10**18})
        c.transact(registry.functions.registerModel(
            _registration(pkg, deployed["mlp"].verifier, royaltyBps=2_500), [], [MALLORY.address], [10_000]),
            abi, account=MALLORY)
        alias = registry.functions.modelIdOf(MALLORY.address, bytes.fromhex(pkg.circuit_id)).call()
        assert alias != model_id(ws, pkg.circuit_id)
        assert _model(c, alias)["owner"] == MALLORY.address and _model(c, alias)["royaltyBps"] == 2_500
        request, instances = commit_by_hand(c, token, abi, bundle, pkg, alias, account=MALLORY)
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenAlreadyMinted"):
            c.transact(token.functions.mint(request, bundle.proof_bytes, instances, []),
                       abi, account=MALLORY)


def _record_keys(token_id, anvil, ws):
    rec = proofmint.show(token_id, rpc_url=anvil.url, workspace=ws).record
    return rec["proofHash"], rec["inferenceId"]


def test_registrations_are_bound_to_their_registrant_so_nothing_can_be_squatted(deployed, circuits, ws, anvil):
    circuit = bytes.fromhex("ab" * 32)
    pkg = circuits["mlp"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, _, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        first = _registration(pkg, deployed["mlp"].verifier, circuitHash=circuit)
        c.transact(registry.functions.registerModel(first, [], [EVE.address], [10_000]), abi, account=EVE)  # Eve first
        c.transact(registry.functions.registerModel(first, [], [c.address], [10_000]), abi)  # the owner's still lands
        ids = {registry.functions.modelIdOf(a, circuit).call() for a in (EVE.address, c.address)}
        assert len(ids) == 2 and all(registry.functions.isRegistered(i).call() for i in ids)
        assert _model(c, registry.functions.modelIdOf(c.address, circuit).call())["owner"] == c.address
        assert _model(c, registry.functions.modelIdOf(EVE.address, circuit).call())["owner"] == EVE.address
        with pytest.raises(TransactionRevertedError, match="ModelRegistryAlreadyRegistered"):
            c.transact(registry.functions.registerModel(first, [], [c.address], [10_000]), abi)


@pytest.mark.parametrize("change,error", [
    ({"outputCount": 0}, "ModelRegistryInvalidLayout"),  # outputs bound to nothing
    ({"outputStart": 5}, "ModelRegistryInvalidLayout"),  # overlaps the 13 input instances
    ({"instanceCount": 10}, "ModelRegistryInvalidLayout"),  # layout past the instances
    ({"royaltyBps": 10_000}, "ModelRegistryInvalidRoyalty"),  # over the 25 % cap
    ({"parentModel": b"\x77" * 32}, "ModelRegistryUnknownModel"),  # fine-tuned from nothing registered
    ({"license": {"commercialUse": True, "derivativesAllowed": True, "attributionRequired": True,
                  "parentShareBps": 10_001, "proverShareBps": 0}}, "ModelRegistryInvalidLicense"),  # over 100 % to the parent
    ({"license": {"commercialUse": True, "derivativesAllowed": True, "attributionRequired": True,
                  "parentShareBps": 0, "proverShareBps": 10_001}}, "ModelRegistryInvalidLicense"),  # ... to the prover
])
def test_unsound_layouts_royalties_and_terms_are_refused(change, error, deployed, circuits, ws, anvil):
    pkg = circuits["mlp"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, _, abi = _contracts(c, deployed["mlp"])
        reg = _registration(pkg, deployed["mlp"].verifier, circuitHash=bytes.fromhex("cd" * 32), **change)
        with pytest.raises(TransactionRevertedError, match=error):
            c.transact(registry.functions.registerModel(reg, [], [c.address], [10_000]), abi)


@pytest.mark.parametrize("payees,shares,error", [
    ([0, 5], [5_000, 4_000], "RoyaltySplitInvalidShares"),  # 90 %
    ([0, 5], [6_000, 5_000], "RoyaltySplitInvalidShares"),  # 110 %
    ([0, 0], [5_000, 5_000], "RoyaltySplitInvalidPayee"),  # one payee twice
    ([0], [], "RoyaltySplitLengthMismatch"),
])
def test_a_royalty_split_that_is_not_exactly_100_percent_is_refused(payees, shares, error, deployed, circuits,
                                                                      ws, anvil):
    pkg = circuits["mlp"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, _, abi = _contracts(c, deployed["mlp"])
        reg = _registration(pkg, deployed["mlp"].verifier, circuitHash=bytes.fromhex("ce" * 32))
        who = [Account.from_key(dev_keys()[i]).address for i in payees]
        with pytest.raises(TransactionRevertedError, match=error):
            c.transact(registry.functions.registerModel(reg, [], who, shares), abi)


def test_model_ownership_moves_in_two_steps_and_the_royalty_split_stays(deployed, circuits, proofs, ws, anvil):
    """Shares are fixed at registration: a new owner controls the model, not its royalties."""
    pkg = circuits["lenet"].package
    mid = model_id(ws, pkg.circuit_id)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["lenet"])
        split = _model(c, mid)["royaltyReceiver"]
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        with pytest.raises(TransactionRevertedError, match="ModelRegistryUnauthorized"):
            c.transact(registry.functions.transferModelOwnership(mid, EVE.address), abi, account=EVE)
        c.transact(registry.functions.transferModelOwnership(mid, EVE.address), abi)
        assert _model(c, mid)["owner"] == c.address  # not until accepted
        c.transact(registry.functions.acceptModelOwnership(mid), abi, account=EVE)
        assert _model(c, mid)["owner"] == EVE.address and _model(c, mid)["royaltyReceiver"] == split
        c.transact(registry.functions.transferModelOwnership(mid, c.address), abi, account=EVE)
        c.transact(registry.functions.acceptModelOwnership(mid), abi)
        assert _model(c, mid)["owner"] == c.address


def test_royalty_info_of_a_missing_token_reverts(deployed, ws, anvil):
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        _, token, abi = _contracts(c, deployed["mlp"])
        with pytest.raises(TransactionRevertedError, match="ERC721NonexistentToken"):
            c.call(token.functions.royaltyInfo(10**9, 10_000), abi)


def test_a_proof_uri_that_could_break_the_metadata_is_refused(deployed, circuits, zoo, ws, anvil, tmp_path):
    p = _fresh_mlp_proof(zoo, circuits, ws, tmp_path, 21)
    injected = 'ipfs://x","model_id":"0xabab","name":"Official FamousModel output","zz":"'
    with pytest.raises(TransactionRevertedError, match="ProvenanceTokenUnsafeURI"):
        proofmint.mint(p, proof_uri=injected, rpc_url=anvil.url, workspace=ws)


def test_a_parent_needs_its_owners_consent(deployed, circuits, zoo, ws, anvil, tmp_path):
    first = proofmint.mint(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 22), rpc_url=anvil.url, workspace=ws)
    pkg = circuits["mlp"].package
    child = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 23))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        _, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": EVE.address, "value": 10**18})
        request, instances = commit_by_hand(c, token, abi, child, pkg, model_id(ws, pkg.circuit_id), account=EVE)
        request["parent"] = first.token_id
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenParentNotAuthorized"):
            c.transact(token.functions.mint(request, child.proof_bytes, instances, []),
                       abi, account=EVE)


def test_hashed_params_are_refused_until_they_are_bound(zoo, ws):
    with pytest.raises(UsageError, match="does not bind the weights"):
        proofmint.compile(zoo["mlp"].onnx, param_visibility="hashed", workspace=ws)


def test_edited_outputs_under_hashed_outputs_are_invalid(zoo, ws, tmp_path):
    c = proofmint.compile(zoo["mlp"].onnx, output_visibility="hashed", workspace=ws)
    assert c.package.visibility.output_hashed
    bundle = proofmint.prove(c.circuit_id, input=zoo["mlp"].input, out=tmp_path / "h.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    data = json.loads(open(bundle).read())
    data["outputs"] = [[999.0, -999.0, 42.0]]
    verdict = proofmint.verify(_write(tmp_path / "edited.json", data), workspace=ws)
    assert not verdict.valid and "hash to the proven output commitment" in verdict.reason


def test_verify_asset_names_a_registration_that_does_not_match_the_models_artifacts(
        deployed, circuits, zoo, ws, anvil, tmp_path):
    """A registration of the genuine verifier with another model's hashes (say, to claim a
    famous model's name): its tokens verify on-chain, and verify-asset says which fields lie."""
    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 24))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": TRENT.address, "value": 10**18})
        token_id = _mint_through(c, registry, token, abi, TRENT, _registration(
            pkg, deployed["mlp"].verifier, onnxHash=b"\x11" * 32, vkHash=b"\x22" * 32), bundle, pkg, ws)
    verdict = proofmint.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    assert not verdict.valid
    failed = {name for name, check in verdict.checks.items() if not check.ok}
    # the ONNX hash names no file at the model URI, nor the circuit; the vk hash isn't the key
    assert failed == {"model file", "circuit", "verifying key", "model compiles to the key"}, verdict.checks


def test_verify_asset_names_a_registered_layout_the_settings_dont_give(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A registration of the genuine verifier whose layout binds only 12 of the 13 inputs: the
    token's input commitment then says less than the proof does, and verify-asset says so."""
    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 25))
    victor = Account.from_key(dev_keys()[6])
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": victor.address, "value": 10**18})
        twelve = keccak(b"".join(v.to_bytes(32, "big") for v in bundle.instance_words[:12]))
        token_id = _mint_through(c, registry, token, abi, victor, _registration(
            pkg, deployed["mlp"].verifier, inputCount=12), bundle, pkg, ws, commitment=twelve)
    verdict = proofmint.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
    failed = {name for name, check in verdict.checks.items() if not check.ok}
    assert not verdict.valid and "layout" in failed and "input commitment" in failed, verdict.checks


@pytest.mark.parametrize("creation,what", [
    ("0x69600260005260206000f3600052600a6016f3", "returns the word 2"),
    ("0x6000600053600160" + "00f3", "returns one byte"),
])
def test_an_odd_verifier_answer_is_a_rejection_not_a_revert(creation, what, deployed, circuits, proofs, ws, anvil):
    pkg = circuits["mlp"].package
    bundle = load_bundle(proofs["mlp"])
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, _, abi = _contracts(c, deployed["mlp"])
        odd = c.transact(c.w3.eth.contract(abi=[], bytecode=creation).constructor(), [])["contractAddress"]
        circuit = bytes.fromhex(("e1" if "2" in what else "e2") * 32)
        c.transact(registry.functions.registerModel(_registration(pkg, odd, circuitHash=circuit),
                                                    [], [c.address], [10_000]), abi)
        mid = registry.functions.modelIdOf(c.address, circuit).call()
        assert registry.functions.checkInference(mid, bundle.proof_bytes,
                                                 bundle.instance_words, []).call() is False


def test_a_private_input_is_one_token_per_statement(zoo, ws, anvil, tmp_path):
    """Private inputs commit to nothing: the statement is the outputs alone, so a second proof
    of them (freshly blinded: other proof bytes) is the same statement, refused. The replay
    key takes nothing a registration chooses (see the private-layout alias below)."""
    c = proofmint.compile(zoo["mlp"].onnx, input_visibility="private", workspace=ws)
    assert c.package.visibility.input_private
    proofmint.deploy(c.circuit_id, rpc_url=anvil.url, workspace=ws)
    first, second = (proofmint.prove(c.circuit_id, input=zoo["mlp"].input, out=tmp_path / f"{n}.json",
                                     workspace=ws).bundles[0]
                     for n in ("a", "b"))
    assert load_bundle(first).ezkl_proof["instances"] == load_bundle(second).ezkl_proof["instances"]
    assert load_bundle(first).proof_bytes != load_bundle(second).proof_bytes
    proofmint.mint(first, rpc_url=anvil.url, workspace=ws)
    for again in (second, first):
        with pytest.raises(ChainError, match="already token"):
            proofmint.mint(again, rpc_url=anvil.url, workspace=ws)


def test_a_license_without_derivatives_refuses_a_child_token(deployed, circuits, zoo, ws, anvil, tmp_path):
    """The parent's model license decides: a token of a no-derivatives model can't be a parent."""
    pkg = circuits["mlp"].package
    parent = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 26))
    child = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 27))
    olga = Account.from_key(dev_keys()[7])
    closed = {"commercialUse": False, "derivativesAllowed": False, "attributionRequired": True,
              "parentShareBps": 0, "proverShareBps": 0}
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": olga.address, "value": 10**18})
        parent_id = _mint_through(c, registry, token, abi, olga,
                                  _registration(pkg, deployed["mlp"].verifier, license=closed), parent, pkg, ws)
        request, instances = commit_by_hand(c, token, abi, child, pkg, model_id(ws, pkg.circuit_id), account=olga)
        request["parent"] = parent_id
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenDerivativesNotAllowed"):
            c.transact(token.functions.mint(request, child.proof_bytes, instances, []), abi, account=olga)
