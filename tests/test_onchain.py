"""On a real anvil: deploy, mint, and every way a mint must be refused."""

import json
import os

import pytest

from proofmint.errors import ChainError, TransactionRevertedError, UsageError
from proofmint.prover import load_bundle, prove
from proofmint.store import Workspace
from proofmint.verifier import asset, evm
from proofmint.verifier.chain import connect, dev_keys

from .conftest import run_cli


def _edit(path, tmp_path, fn, name="edited.json"):
    data = json.loads(open(path).read())
    fn(data)
    out = tmp_path / name
    out.write_text(json.dumps(data))
    return out


def model_id(ws, circuit_id: str) -> bytes:
    """The registry id this workspace's deploy of a circuit got (registrant + circuit)."""
    dep = json.loads((ws / "chains" / "31337" / "deployments.json").read_text())
    return bytes.fromhex(dep["verifiers"][circuit_id]["model_id"][2:])


def commit_by_hand(c, token, abi, bundle, pkg, mid: bytes, account=None):
    """Commit to a bundle's inference by hand; returns the reveal's request and instances."""
    account = account or c.account
    instances = asset.evm_instances(bundle)
    inference = token.functions.inferenceIdOf(mid, instances, bytes(bundle.ezkl_proof["proof"])).call()
    salt = os.urandom(32)
    c.transact(token.functions.commit(token.functions.commitmentFor(account.address, inference, salt).call()),
               abi, account=account)
    return (mid, account.address, 0, asset.input_commitment(bundle, pkg), salt, "", bundle.count), instances


def _commit(c, token, abi, bundle, pkg):
    return commit_by_hand(c, token, abi, bundle, pkg, model_id(c.ws.root, bundle.circuit_id))


def test_deploy_twice_is_a_noop(deployed, circuits, ws, anvil):
    again = evm.deploy(circuits["mlp"].circuit_id, rpc_url=anvil.url, workspace=ws)
    assert again.already_deployed and again.verifier == deployed["mlp"].verifier
    assert again.gas == {}


def test_valid_mint_show_royalty_and_verify_asset(deployed, proofs, ws, anvil):
    m = asset.mint(proofs["lenet"], rpc_url=anvil.url, workspace=ws)
    print(f"\nGAS lenet (64 public inputs): commit {m.gas_used['commit']:,}, mint {m.gas_used['mint']:,}")
    assert m.token_id >= 1 and m.gas_used["mint"] > 500_000
    shown = asset.show(m.token_id, rpc_url=anvil.url, workspace=ws)
    assert shown["metadata"]["circuit_id"] == "0x" + m.circuit_id
    assert shown["metadata"]["input_commitment"] == m.input_commitment
    assert shown["metadata"]["chain_id"] == 31337
    # royalties go to the registered model owner: 5% by default
    owner = json.loads(open(ws / "chains" / "31337" / "deployments.json").read())["verifiers"][m.circuit_id]["owner"]
    assert shown["royalty"] == {"receiver": owner, "bps": 500}
    verdict = asset.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws)
    assert verdict.valid, verdict.checks


def test_erc165_reports_erc7007_erc721_erc2981(deployed, ws, anvil):
    built = evm.build_contracts(Workspace(ws))
    with connect(anvil.url, ws) as c:
        token = c.w3.eth.contract(address=deployed["mlp"].token, abi=built["ProvenanceToken"]["abi"])
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
        asset.mint(p, rpc_url=anvil.url, workspace=ws)


def test_tampered_instance_cannot_be_minted(deployed, proofs, ws, anvil, tmp_path):
    def swap(d):
        inst = d["ezkl_proof"]["instances"][0]
        inst[-1], inst[-2] = inst[-2], inst[-1]
    with pytest.raises(TransactionRevertedError, match="ModelRegistryProofRejected"):
        asset.mint(_edit(proofs["mlp"], tmp_path, swap), rpc_url=anvil.url, workspace=ws)


def test_model_a_proof_under_model_b_is_refused(deployed, proofs, circuits, ws, anvil, tmp_path):
    p = _edit(proofs["mlp"], tmp_path, lambda d: d.__setitem__("circuit_id", circuits["lenet"].circuit_id))
    with pytest.raises(TransactionRevertedError, match="ProofRejected|InstancesTooShort|InputMismatch"):
        asset.mint(p, rpc_url=anvil.url, workspace=ws)


def test_input_commitment_mismatch_is_refused(deployed, proofs, ws, anvil, tmp_path):
    p = _edit(proofs["mlp"], tmp_path, lambda d: d["input"].__setitem__(0, d["input"][0] + 0.5))
    with pytest.raises(TransactionRevertedError, match="ProvenanceTokenInputMismatch"):
        asset.mint(p, rpc_url=anvil.url, workspace=ws)


def test_replay_of_a_minted_inference_is_refused(deployed, proofs, circuits, zoo, ws, anvil, tmp_path):
    asset.mint(proofs["mlp"], rpc_url=anvil.url, workspace=ws)
    with pytest.raises(ChainError, match="already token"):
        asset.mint(proofs["mlp"], rpc_url=anvil.url, workspace=ws)
    # a fresh proof of the same inference has other proof bytes but the same instances
    fresh = prove(circuits["mlp"].circuit_id, zoo["mlp"].input, tmp_path / "again.json", workspace=ws)
    assert load_bundle(fresh.bundles[0]).ezkl_proof["proof"] != load_bundle(proofs["mlp"]).ezkl_proof["proof"]
    with pytest.raises(ChainError, match="already token"):
        asset.mint(fresh.bundles[0], rpc_url=anvil.url, workspace=ws)


def test_front_running_a_pending_mint_fails(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Eve copies Alice's reveal (proof, instances, salt) from the mempool and sends it herself."""
    from eth_account import Account

    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    inp = tmp_path / "x.json"
    inp.write_text(json.dumps({"input_data": [calib[13:26]]}))
    bundle = load_bundle(prove(circuits["mlp"].circuit_id, inp, tmp_path / "fr.json", workspace=ws).bundles[0])
    built = evm.build_contracts(Workspace(ws))
    abi = built["ProvenanceToken"]["abi"] + built["ModelRegistry"]["abi"]
    pkg = circuits["mlp"].package
    with connect(anvil.url, ws) as c:
        token = c.w3.eth.contract(address=deployed["mlp"].token, abi=built["ProvenanceToken"]["abi"])
        request, instances = _commit(c, token, abi, bundle, pkg)
        reveal = token.functions.mint(request, bytes(bundle.ezkl_proof["proof"]), instances, [])
        eve = Account.from_key(dev_keys()[1])
        eves = (request[0], eve.address) + request[2:]  # Alice's salt, copied from the mempool
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenNoCommitment"):
            c.transact(token.functions.mint(eves, bytes(bundle.ezkl_proof["proof"]), instances, []), abi,
                       account=eve)
        receipt = c.transact(reveal, abi)  # Alice's reveal still lands
        assert receipt["status"] == 1


def test_hashed_input_circuit_mints_with_a_poseidon_commitment(deployed, hashed_mlp, ws, anvil):
    m = asset.mint(hashed_mlp[1], rpc_url=anvil.url, workspace=ws)
    d = deployed["mlp-hashed"]
    print(f"\nGAS mlp hashed input: verifier deploy {d.gas.get('deploy_verifier', 0):,}, mint {m.gas_used['mint']:,}")
    assert asset.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws).valid


def test_parent_lineage_and_unknown_parent(deployed, circuits, zoo, ws, anvil, tmp_path):
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    paths = []
    for i, sl in enumerate((slice(26, 39), slice(39, 52))):
        inp = tmp_path / f"x{i}.json"
        inp.write_text(json.dumps({"input_data": [calib[sl]]}))
        paths.append(prove(circuits["mlp"].circuit_id, inp, tmp_path / f"l{i}.json", workspace=ws).bundles[0])
    first = asset.mint(paths[0], rpc_url=anvil.url, workspace=ws)
    with pytest.raises(TransactionRevertedError, match="ProvenanceTokenUnknownParent"):
        asset.mint(paths[1], parent=10_000, rpc_url=anvil.url, workspace=ws)
    child = asset.mint(paths[1], parent=first.token_id, rpc_url=anvil.url, workspace=ws)
    assert asset.show(child.token_id, rpc_url=anvil.url, workspace=ws)["record"]["parent"] == first.token_id


def test_tokens_survive_an_anvil_restart(deployed, proofs, ws, tmp_path):
    """Embedded-chain mode end to end through the CLI: mint, stop anvil, restart from its state file."""
    env = {"PROOFMINT_HOME": str(tmp_path / "ws2")}
    import shutil
    shutil.copytree(ws / "circuits", tmp_path / "ws2" / "circuits")
    cid = load_bundle(proofs["generator"]).circuit_id
    assert run_cli("deploy", cid, env=env).returncode == 0
    minted = run_cli("mint", proofs["generator"], "--json", env=env)
    assert minted.returncode == 0, minted.stderr
    token_id = json.loads(minted.stdout)["token_id"]
    # each command above started and stopped its own anvil: the token lives in the state file
    up = run_cli("chain", "up", "--json", env=env)
    assert up.returncode == 0, up.stderr
    try:
        va = run_cli("verify-asset", str(token_id), "--json", env=env)
        assert va.returncode == 0 and json.loads(va.stdout)["valid"], va.stdout + va.stderr
    finally:
        assert run_cli("chain", "down", env=env).returncode == 0


def test_dev_key_refused_on_other_chain_ids(tmp_path):
    import subprocess

    from proofmint.verifier import toolchain
    from proofmint.verifier.chain import _free_port

    port = _free_port()
    proc = subprocess.Popen([str(toolchain.anvil_path()), "--port", str(port), "--chain-id", "5",
                             "--silent"])
    try:
        import time
        from proofmint.verifier.chain import _answers
        for _ in range(100):
            if _answers(f"http://127.0.0.1:{port}"):
                break
            time.sleep(0.1)
        try:
            for index in (0, 57):  # the default accounts, and any anvil --accounts could hand out
                os.environ["PROOFMINT_PRIVATE_KEY"] = dev_keys(100)[index]
                with pytest.raises(ChainError, match="refusing anvil's public development key"):
                    with connect(f"http://127.0.0.1:{port}", tmp_path / "ws"):
                        pass
        finally:
            del os.environ["PROOFMINT_PRIVATE_KEY"]
    finally:
        proc.terminate()
        proc.wait()


def test_unreachable_rpc_is_a_clear_error_and_records_nothing(circuits, ws):
    before = sorted(p.name for p in (ws / "chains").rglob("*")) if (ws / "chains").exists() else []
    r = run_cli("deploy", circuits["mlp"].circuit_id, "--rpc-url", "http://127.0.0.1:9", "-w", ws)
    assert r.returncode == 2 and "unreachable" in r.stderr, r.stderr
    after = sorted(p.name for p in (ws / "chains").rglob("*")) if (ws / "chains").exists() else []
    assert before == after


def test_reusable_verifier_is_shared_and_refuses_a_wrong_vka(circuits, proofs, ws, anvil, tmp_path):
    gen = evm.deploy(circuits["generator"].circuit_id, reusable=True, rpc_url=anvil.url, workspace=ws)
    tr = evm.deploy(circuits["transformer"].circuit_id, reusable=True, rpc_url=anvil.url, workspace=ws)
    assert gen.verifier_kind == tr.verifier_kind == "reusable"
    assert gen.verifier == tr.verifier and "deploy_reusable_verifier" not in tr.gas

    bundle = load_bundle(proofs["transformer"])
    built = evm.build_contracts(Workspace(ws))
    abi = built["ProvenanceToken"]["abi"] + built["ModelRegistry"]["abi"]
    pkg = circuits["transformer"].package
    with connect(anvil.url, ws) as c:
        token = c.w3.eth.contract(address=tr.token, abi=built["ProvenanceToken"]["abi"])
        request, instances = _commit(c, token, abi, bundle, pkg)
        other_vka = evm.vka_for(circuits["generator"].package, {"kind": "reusable"})
        with pytest.raises(TransactionRevertedError, match="ModelRegistryWrongVka"):
            c.transact(token.functions.mint(request, bytes(bundle.ezkl_proof["proof"]), instances, other_vka), abi)

    m = asset.mint(proofs["transformer"], rpc_url=anvil.url, workspace=ws)
    print(f"\nGAS transformer via reusable verifier: register_vka {tr.gas['register_vka']:,}, mint {m.gas_used['mint']:,}")
    assert asset.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws).valid


def test_signing_key_from_an_encrypted_keystore(anvil, tmp_path, monkeypatch):
    from eth_account import Account

    key = dev_keys()[3]
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(key, "correct horse")))
    monkeypatch.setenv("PROOFMINT_KEYSTORE", str(keystore))
    monkeypatch.setenv("PROOFMINT_KEYSTORE_PASSWORD", "correct horse")
    with connect(anvil.url, tmp_path / "ws") as c:
        assert c.address == Account.from_key(key).address
    monkeypatch.setenv("PROOFMINT_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(UsageError, match="can't decrypt keystore"):
        with connect(anvil.url, tmp_path / "ws"):
            pass
