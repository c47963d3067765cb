"""On a real anvil: deploy, mint, and every way a mint must be refused."""

import json
import os
import shutil
from pathlib import Path

import pytest

import proofmint
from proofmint import encoding
from proofmint.errors import ChainError, TransactionRevertedError, UsageError, VerificationError
from proofmint.prover import load_bundle
from proofmint.store import Workspace, atomic_write_json
from proofmint.verifier.chain.anvil import DEV_CHAIN_ID, Anvil
from proofmint.verifier.chain.client import connect, gas_limit
from proofmint.verifier.chain.deploy import vka_for
from proofmint.verifier.chain.keys import DEV_KEYS_REFUSED, dev_keys
from proofmint.verifier.chain.mint import await_commit_age, item_commitments, publish_tokens
from proofmint.verifier.chain.records import deployment
from proofmint.verifier.content.publish import token_error_ppm

from ...conftest import run_cli, tree_digest


def _edit(path, tmp_path, fn, name="edited.json"):
    data = json.loads(open(path).read())
    fn(data)
    out = tmp_path / name
    out.write_text(json.dumps(data))
    return out


def _deployments(ws, chain_id: int = DEV_CHAIN_ID) -> dict:
    """This workspace's deployments record on a chain (deployments.json)."""
    return json.loads(Workspace.resolve(ws).deployments(chain_id).read_text())


def model_id(ws, circuit_id: str, *, chain_id: int = DEV_CHAIN_ID) -> bytes:
    """The registry id this workspace's deploy of a circuit got (registrant + circuit).
    ``ws``: a workspace folder or a :class:`Workspace`."""
    return bytes.fromhex(_deployments(ws, chain_id)["verifiers"][circuit_id]["model_id"][2:])


def commit_by_hand(c, token, abi, bundle, pkg, mid: bytes, account=None, metadata: list[bytes] | None = None,
                   parent: int = 0):
    """Commit to a bundle's inference by hand and let the commitment age; returns the reveal's
    request (a ``MintRequest`` dict, by its Solidity field names) and the instances. The token's
    content is published as a real mint publishes it, unless ``metadata`` (digests) is given."""
    account = account or c.account
    instances = bundle.instance_words
    inference = token.functions.inferenceIdOf(mid, instances).call()
    salt = os.urandom(32)
    receipt = c.transact(token.functions.commit(token.functions.commitmentFor(account.address, inference, salt).call()),
                         abi, account=account)
    await_commit_age(deployment(c), receipt)
    proof_uri = ""
    if metadata is None:  # the content a real mint publishes (so verify-asset can fetch it)
        bundle_file = atomic_write_json(c.ws.path("hand-minted", f"{bundle.proof_hash}.json"), bundle.to_dict())
        proof_uri, tokens = publish_tokens(deployment(c), bundle, pkg, bundle_file, model_id="0x" + bytes(mid).hex(),
                                           creator=account.address, parent=parent)
        metadata = [t.digest for t in tokens]
    request = {"modelId": mid, "to": account.address, "parent": parent,
               "inputCommitment": encoding.mint_commitment(item_commitments(bundle, pkg), pkg.batch_size),
               "salt": salt, "proofURI": proof_uri, "count": bundle.count, "metadata": metadata,
               "errorPpm": [token_error_ppm(bundle, pkg, i) for i in range(bundle.count)], "parentOutputs": []}
    return request, instances


def _commit(c, token, abi, bundle, pkg):
    return commit_by_hand(c, token, abi, bundle, pkg, model_id(c.ws, bundle.circuit_id, chain_id=c.chain_id))


def _handles(c, deployed):
    """The registry, token and both ABIs this workspace deployed on ``c``: the ones ``deployed``
    (a DeployResult) names."""
    d = deployment(c)
    assert (d.registry.address, d.token.address) == (deployed.registry, deployed.token)
    return d.registry, d.token, d.abi


def test_deploy_twice_is_a_noop(deployed, circuits, ws, anvil):
    again = proofmint.deploy(circuits["mlp"].circuit_id, rpc_url=anvil.url, workspace=ws)
    assert again.already_deployed and again.verifier == deployed["mlp"].verifier
    assert again.gas == {}
    assert (again.registry, again.token) == (deployed["mlp"].registry, deployed["mlp"].token)


def test_valid_mint_show_royalty_and_verify_asset(deployed, proofs, ws, anvil):
    m = proofmint.mint(proofs["lenet"], rpc_url=anvil.url, workspace=ws)
    print(f"\nGAS lenet (64 public inputs): commit {m.gas_used['commit']:,}, mint {m.gas_used['mint']:,}")
    assert m.token_id >= 1 and m.gas_used["mint"] > 500_000
    shown = proofmint.show(m.token_id, rpc_url=anvil.url, workspace=ws)
    assert shown.token_id == m.token_id and shown.chain_id == DEV_CHAIN_ID and shown.owner == m.owner
    assert shown.token_uri == m.token_uris[0] and shown.token_uri.startswith("ipfs://bafkrei")
    assert shown.metadata["circuit"]["id"] == "0x" + m.circuit_id
    assert shown.metadata["input_commitment"] == m.input_commitment
    assert shown.metadata["chain"]["chain_id"] == 31337 and shown.metadata["proof_type"] == "validity"
    assert shown.record["inputCommitment"] == m.input_commitment
    assert shown.record["modelId"] == "0x" + model_id(ws, m.circuit_id).hex()
    # royalties go to the model's split, all of it to the deployer by default: 5 %
    owner = _deployments(ws)["verifiers"][m.circuit_id]["owner"]
    assert shown.royalty["bps"] == 500 and shown.royalty["receiver"] == shown.record["royaltyReceiver"]
    assert shown.royalty["split"] == [{"payee": owner, "bps": 10_000}]
    verdict = proofmint.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws)
    assert verdict.valid, verdict.checks
    assert verdict.checks and all(check.ok for check in verdict.checks.values()), verdict.checks


def test_erc165_reports_erc7007_erc721_erc2981(deployed, ws, anvil):
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        _, token, _ = _handles(c, deployed["mlp"])
        for iface in ("0x80ac58cd", "0x2a55205a", "0x01ffc9a7"):
            assert token.functions.supportsInterface(bytes.fromhex(iface[2:])).call()
        add = c.w3.keccak(text="addAigcData(uint256,bytes,bytes,bytes)")[:4]
        ver = c.w3.keccak(text="verify(bytes,bytes,bytes)")[:4]
        erc7007 = bytes(a ^ b for a, b in zip(add, ver))
        assert token.functions.supportsInterface(erc7007).call()


def test_tampered_proof_cannot_be_minted(deployed, proofs, ws, anvil, tmp_path):
    p = _edit(proofs["mlp"], tmp_path, lambda d: d["ezkl_proof"]["proof"].__setitem__(
        100, d["ezkl_proof"]["proof"][100] ^ 1))
    with pytest.raises(TransactionRevertedError, match="ModelRegistryProofRejected"):
        proofmint.mint(p, rpc_url=anvil.url, workspace=ws)


def test_tampered_instance_cannot_be_minted(deployed, proofs, ws, anvil, tmp_path):
    def swap(d):
        inst = d["ezkl_proof"]["instances"][0]
        inst[-1], inst[-2] = inst[-2], inst[-1]
    with pytest.raises(TransactionRevertedError, match="ModelRegistryProofRejected"):
        proofmint.mint(_edit(proofs["mlp"], tmp_path, swap), rpc_url=anvil.url, workspace=ws)


def test_model_a_proof_under_model_b_is_refused(deployed, proofs, circuits, ws, anvil, tmp_path):
    """An MLP proof relabelled as the LeNet's: mint refuses it before any transaction (it can't
    be rendered as a LeNet output), and the chain refuses it too when it is sent by hand."""
    p = _edit(proofs["mlp"], tmp_path, lambda d: d.__setitem__("circuit_id", circuits["lenet"].circuit_id))
    with pytest.raises(VerificationError, match="does not fit circuit"):
        proofmint.mint(p, rpc_url=anvil.url, workspace=ws)
    bundle, lenet = load_bundle(p), circuits["lenet"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        _, token, abi = _handles(c, deployed["lenet"])
        request, instances = commit_by_hand(c, token, abi, bundle, lenet, model_id(ws, lenet.circuit_id),
                                            metadata=[b"\x01" * 32])
        with pytest.raises(TransactionRevertedError, match="ProofRejected"):
            c.transact(token.functions.mint(request, bundle.proof_bytes, instances, []), abi)


def test_input_commitment_mismatch_is_refused(deployed, proofs, ws, anvil, tmp_path):
    p = _edit(proofs["mlp"], tmp_path, lambda d: d["input"].__setitem__(0, d["input"][0] + 0.5))
    with pytest.raises(TransactionRevertedError, match="ProvenanceTokenInputMismatch"):
        proofmint.mint(p, rpc_url=anvil.url, workspace=ws)


def test_replay_of_a_minted_inference_is_refused(deployed, proofs, circuits, zoo, ws, anvil, tmp_path):
    proofmint.mint(proofs["mlp"], rpc_url=anvil.url, workspace=ws)
    with pytest.raises(ChainError, match="already token"):
        proofmint.mint(proofs["mlp"], rpc_url=anvil.url, workspace=ws)
    # a fresh proof of the same inference has other proof bytes but the same instances
    fresh = proofmint.prove(circuits["mlp"].circuit_id, input=zoo["mlp"].input, out=tmp_path / "again.json",
                            workspace=ws)
    assert load_bundle(fresh.bundles[0]).proof_bytes != load_bundle(proofs["mlp"]).proof_bytes
    assert load_bundle(fresh.bundles[0]).instance_words == load_bundle(proofs["mlp"]).instance_words
    with pytest.raises(ChainError, match="already token"):
        proofmint.mint(fresh.bundles[0], rpc_url=anvil.url, workspace=ws)


def test_front_running_a_pending_mint_fails(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Eve copies Alice's reveal (proof, instances, salt) from the mempool and sends it herself."""
    from eth_account import Account

    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    inp = tmp_path / "x.json"
    inp.write_text(json.dumps({"input_data": [calib[13:26]]}))
    bundle = load_bundle(proofmint.prove(circuits["mlp"].circuit_id, input=inp, out=tmp_path / "fr.json",
                                         workspace=ws).bundles[0])
    pkg = circuits["mlp"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        _, token, abi = _handles(c, deployed["mlp"])
        request, instances = _commit(c, token, abi, bundle, pkg)
        reveal = token.functions.mint(request, bundle.proof_bytes, instances, [])
        eve = Account.from_key(dev_keys()[1])
        eves = {**request, "to": eve.address}  # Alice's salt, copied from the mempool
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenNoCommitment"):
            c.transact(token.functions.mint(eves, bundle.proof_bytes, instances, []), abi, account=eve)
        receipt = c.transact(reveal, abi)  # Alice's reveal still lands
        assert receipt["status"] == 1


@pytest.mark.parametrize("estimate,block,asked", [
    (1_000_000, 30_000_000, 1_200_000),  # a fifth more
    (26_000_000, 30_000_000, 30_000_000),  # no more than the block holds
    (15_000_000, 30_000_000, 2**24),  # under EIP-7825's cap: kept under it
    (20_000_000, 36_000_000, 24_000_000),  # over it already: a chain that enforces it refuses it anyway
    (31_000_000, 30_000_000, 31_000_000),  # a block under the estimate: refused by the node, not run short
])
def test_a_transaction_asks_for_gas_the_block_and_eip7825_allow(estimate, block, asked):
    assert gas_limit(estimate, block) == asked


def test_a_mint_whose_margin_the_block_cant_hold_still_lands(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A block of 10 % more gas than the mint needs: the estimate's fifth of margin would be a
    transaction the chain refuses outright."""
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    bundles = []
    for i in (4, 5):
        inp = tmp_path / f"x{i}.json"
        inp.write_text(json.dumps({"input_data": [calib[13 * i:13 * (i + 1)]]}))
        bundles.append(proofmint.prove(circuits["mlp"].circuit_id, input=inp, out=tmp_path / f"g{i}.json",
                                       workspace=ws).bundles[0])
    used = proofmint.mint(bundles[0], rpc_url=anvil.url, workspace=ws).gas_used["mint"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        before = c.w3.eth.get_block("latest")["gasLimit"]
        try:
            assert c.w3.provider.make_request("evm_setBlockGasLimit", [hex(used * 11 // 10)])["result"]
            c.w3.provider.make_request("evm_mine", [])
            m = proofmint.mint(bundles[1], rpc_url=anvil.url, workspace=ws)
            assert c.w3.eth.get_transaction(m.tx_hash)["gas"] == used * 11 // 10
        finally:
            c.w3.provider.make_request("evm_setBlockGasLimit", [hex(before)])
            c.w3.provider.make_request("evm_mine", [])
    assert proofmint.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws).valid


def test_hashed_input_circuit_mints_with_a_poseidon_commitment(deployed, hashed_mlp, ws, anvil):
    m = proofmint.mint(hashed_mlp[1], rpc_url=anvil.url, workspace=ws)
    d = deployed["mlp-hashed"]
    print(f"\nGAS mlp hashed input: verifier deploy {d.gas.get('deploy_verifier', 0):,}, mint {m.gas_used['mint']:,}")
    assert proofmint.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws).valid


def test_parent_lineage_and_unknown_parent(deployed, circuits, zoo, ws, anvil, tmp_path):
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    paths = []
    for i, sl in enumerate((slice(26, 39), slice(39, 52))):
        inp = tmp_path / f"x{i}.json"
        inp.write_text(json.dumps({"input_data": [calib[sl]]}))
        paths.append(proofmint.prove(circuits["mlp"].circuit_id, input=inp, out=tmp_path / f"l{i}.json",
                                     workspace=ws).bundles[0])
    first = proofmint.mint(paths[0], rpc_url=anvil.url, workspace=ws)
    with pytest.raises(TransactionRevertedError, match="ProvenanceTokenUnknownParent"):
        proofmint.mint(paths[1], parent=10_000, rpc_url=anvil.url, workspace=ws)
    child = proofmint.mint(paths[1], parent=first.token_id, rpc_url=anvil.url, workspace=ws)
    assert proofmint.show(child.token_id, rpc_url=anvil.url, workspace=ws).record["parent"] == first.token_id


def test_tokens_survive_an_anvil_restart(deployed, proofs, ws, tmp_path):
    """Embedded-chain mode end to end through the CLI: mint, stop anvil, restart from its state file."""
    ws2 = Workspace.resolve(tmp_path / "ws2")
    env = {"PROOFMINT_HOME": str(ws2.root)}
    shutil.copytree(Workspace.resolve(ws).circuits(), ws2.circuits())
    cid = load_bundle(proofs["generator"]).circuit_id
    assert run_cli("deploy", cid, env=env).returncode == 0
    minted = run_cli("mint", proofs["generator"], "--json", env=env)
    assert minted.returncode == 0, minted.stderr
    token_id = json.loads(minted.stdout)["token_id"]
    assert ws2.token_record(DEV_CHAIN_ID, token_id).is_file()
    # each command above started and stopped its own anvil: the token lives in the state file
    status = proofmint.chain_status(workspace=ws2)
    assert not status.running
    assert Path(status.state_file).is_file() and Path(status.state_file).parent == ws2.anvil_dir()
    up = run_cli("chain", "up", "--json", env=env)
    assert up.returncode == 0, up.stderr
    try:
        assert json.loads(up.stdout)["running"], up.stdout
        va = run_cli("verify-asset", str(token_id), "--json", env=env)
        assert va.returncode == 0 and json.loads(va.stdout)["valid"], va.stdout + va.stderr
    finally:
        assert run_cli("chain", "down", env=env).returncode == 0
    assert not proofmint.chain_status(workspace=ws2).running


def test_dev_key_refused_on_other_chain_ids(tmp_path, monkeypatch):
    monkeypatch.delenv("PROOFMINT_KEYSTORE", raising=False)  # a key and a keystore is another error
    with Anvil(tmp_path / "chain5" / "anvil-state.json", chain_id=5) as node:
        # the default accounts, and any anvil --accounts could hand out (up to the last refused)
        for index in (0, 57, DEV_KEYS_REFUSED - 1):
            monkeypatch.setenv("PROOFMINT_PRIVATE_KEY", dev_keys(DEV_KEYS_REFUSED)[index])
            with pytest.raises(ChainError, match="refusing anvil's public development key"):
                with connect(rpc_url=node.url, workspace=tmp_path / "ws"):
                    pass


def test_unreachable_rpc_is_a_clear_error_and_records_nothing(circuits, ws):
    chains = Workspace.resolve(ws).chain_records(DEV_CHAIN_ID).parent  # every chain's records
    before = tree_digest(chains)
    r = run_cli("deploy", circuits["mlp"].circuit_id, "--rpc-url", "http://127.0.0.1:9", "-w", ws)
    assert r.returncode == 2 and "unreachable" in r.stderr, r.stderr
    assert tree_digest(chains) == before


def test_reusable_verifier_is_shared_and_refuses_a_wrong_vka(circuits, proofs, ws, anvil, tmp_path):
    gen = proofmint.deploy(circuits["generator"].circuit_id, reusable=True, rpc_url=anvil.url, workspace=ws)
    tr = proofmint.deploy(circuits["transformer"].circuit_id, reusable=True, rpc_url=anvil.url, workspace=ws)
    assert gen.verifier_kind == tr.verifier_kind == "reusable"
    assert gen.verifier == tr.verifier and "deploy_reusable_verifier" not in tr.gas

    bundle = load_bundle(proofs["transformer"])
    pkg = circuits["transformer"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        _, token, abi = _handles(c, tr)
        request, instances = _commit(c, token, abi, bundle, pkg)
        other_vka = vka_for(circuits["generator"].package, {"kind": "reusable"})
        assert other_vka and other_vka != vka_for(pkg, {"kind": "reusable"})
        with pytest.raises(TransactionRevertedError, match="ModelRegistryWrongVka"):
            c.transact(token.functions.mint(request, bundle.proof_bytes, instances, other_vka), abi)

    m = proofmint.mint(proofs["transformer"], rpc_url=anvil.url, workspace=ws)
    print(f"\nGAS transformer via reusable verifier: register_vka {tr.gas['register_vka']:,}, mint {m.gas_used['mint']:,}")
    assert proofmint.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws).valid


def test_signing_key_from_an_encrypted_keystore(anvil, tmp_path, monkeypatch):
    from eth_account import Account

    key = dev_keys()[3]
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(key, "correct horse")))
    monkeypatch.setenv("PROOFMINT_KEYSTORE", str(keystore))
    monkeypatch.setenv("PROOFMINT_KEYSTORE_PASSWORD", "correct horse")
    with connect(rpc_url=anvil.url, workspace=tmp_path / "ws") as c:
        assert c.address == Account.from_key(key).address
    monkeypatch.setenv("PROOFMINT_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(UsageError, match="can't decrypt keystore"):
        with connect(rpc_url=anvil.url, workspace=tmp_path / "ws"):
            pass
