"""Kills mid-mint, a killed anvil, a foreign chain and concurrent mints: nothing minted is lost or doubled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import proofmint
from proofmint.errors import ChainError
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier.chain.anvil import DEV_CHAIN_ID, Anvil, _free_port, answers
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.records import deployment

from ...conftest import run_cli, spawn, wait_for


def _mint_env(anvil, point: str | None = None) -> dict:
    env = {"PROOFMINT_RPC_URL": anvil.url}
    if point:
        env["PROOFMINT_FAILPOINT"] = point
    return env


def _minted(anvil, ws) -> int:
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        assert d.record == json.loads(Workspace.resolve(ws).deployments(DEV_CHAIN_ID).read_text())
        return d.token.functions.totalMinted().call()


def _fresh_proof(circuits, zoo, ws, tmp_path, offset: int, name: str) -> Path:
    calib = json.loads(Path(zoo["mlp"].calibration).read_text())["input_data"][0]
    inp = tmp_path / f"{name}.input.json"
    inp.write_text(json.dumps({"input_data": [calib[13 * offset:13 * offset + 13]]}))
    out = tmp_path / f"{name}.json"
    r = run_cli("prove", circuits["mlp"].circuit_id, "--input", inp, "--out", out, "-w", ws)
    assert r.returncode == 0, r.stderr
    return out


def test_sigkill_during_mint_never_records_a_phantom_or_loses_a_token(deployed, circuits, zoo, ws, anvil, tmp_path):
    records = Workspace.resolve(ws).token_record(DEV_CHAIN_ID, 0).parent  # the token records' folder
    # killed after the commit, before the reveal: nothing minted, nothing recorded
    p = _fresh_proof(circuits, zoo, ws, tmp_path, 10, "a")
    n0, files0 = _minted(anvil, ws), set(records.glob("*.json")) if records.exists() else set()
    r = run_cli("mint", p, "-w", ws, env=_mint_env(anvil, "mint:after-commit"))
    assert r.returncode == -signal.SIGKILL
    assert _minted(anvil, ws) == n0 and (set(records.glob("*.json")) if records.exists() else set()) == files0
    r = run_cli("mint", p, "-w", ws, "--json", env=_mint_env(anvil))
    assert r.returncode == 0, r.stderr
    assert _minted(anvil, ws) == n0 + 1

    # killed after the mint landed, before the local record: the next run recovers the record
    q = _fresh_proof(circuits, zoo, ws, tmp_path, 11, "b")
    r = run_cli("mint", q, "-w", ws, env=_mint_env(anvil, "mint:before-record"))
    assert r.returncode == -signal.SIGKILL
    token_id = _minted(anvil, ws)
    assert not (records / f"{token_id}.json").exists()
    # the bundle was stored before the transaction: the asset verifies from its id alone
    assert proofmint.verify_asset(token_id, rpc_url=anvil.url, workspace=ws).valid
    r = run_cli("mint", q, "-w", ws, "--json", env=_mint_env(anvil))
    assert r.returncode == 0, r.stderr
    record = Workspace.resolve(ws).token_record(DEV_CHAIN_ID, token_id)
    assert json.loads(r.stdout)["token_id"] == token_id and record.exists()
    assert record.parent == records
    assert _minted(anvil, ws) == token_id  # recovered, not minted twice
    for rec in records.glob("*.json"):  # every local record is a real token
        assert proofmint.show(int(rec.stem), rpc_url=anvil.url, workspace=ws).token_id == int(rec.stem)


def test_anvil_killed_between_deploy_and_mint_comes_back_with_every_block(circuits, proofs, ws, tmp_path):
    """No waiting for a state dump: a deploy returns only once the state file holds its blocks,
    and the chain's keeper restarts a killed anvil from it on the same port."""
    work = tmp_path / "ws"
    shutil.copytree(Workspace.resolve(ws).circuits(), Workspace.resolve(work).circuits())
    env = {"PROOFMINT_HOME": str(work)}
    up = run_cli("chain", "up", "--json", env=env)
    assert up.returncode == 0, up.stderr
    chain = json.loads(up.stdout)
    assert Path(chain["state_file"]).parent == Workspace.resolve(work).anvil_dir()  # the embedded chain's folder
    try:
        cid = load_bundle(proofs["generator"]).circuit_id
        assert run_cli("deploy", cid, env=env).returncode == 0
        os.kill(chain["pid"], signal.SIGKILL)
        minted = run_cli("mint", proofs["generator"], "--json", env=env)
        assert minted.returncode == 0, minted.stderr
        status = json.loads(run_cli("chain", "status", "--json", env=env).stdout)
        assert status["running"] and status["pid"] != chain["pid"] and status["rpc_url"] == chain["rpc_url"]
        token_id = json.loads(minted.stdout)["token_id"]
        va = run_cli("verify-asset", str(token_id), "--json", env=env)
        assert va.returncode == 0 and json.loads(va.stdout)["valid"], va.stdout + va.stderr
    finally:
        run_cli("chain", "down", env=env)


def test_chain_id_mismatch_with_the_recorded_deployment_is_refused(deployed, ws, tmp_path):
    work = tmp_path / "ws"
    shutil.copytree(Workspace.resolve(ws).chain_records(DEV_CHAIN_ID), Workspace.resolve(work).chain_records(5))
    from proofmint.verifier import toolchain

    port = _free_port()
    proc = subprocess.Popen([str(toolchain.anvil_path()), "--port", str(port), "--chain-id", "5", "--silent"])
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}"), 30)
        env = {"PROOFMINT_PRIVATE_KEY": "0x" + "11" * 32}  # not a development key
        r = run_cli("show", "1", "--rpc-url", f"http://127.0.0.1:{port}", "-w", work, env=env)
        assert r.returncode == 2 and "chain id 31337" in r.stderr, r.stderr
        os.environ.update(env)
        try:
            with pytest.raises(ChainError, match="refusing to mix chains"):
                proofmint.show(1, rpc_url=f"http://127.0.0.1:{port}", workspace=work)
        finally:
            del os.environ["PROOFMINT_PRIVATE_KEY"]
    finally:
        proc.terminate()
        proc.wait()


def test_two_concurrent_mints_of_one_proof_exactly_one_succeeds(deployed, circuits, zoo, ws, anvil, tmp_path):
    p = _fresh_proof(circuits, zoo, ws, tmp_path, 12, "c")
    n0 = _minted(anvil, ws)
    procs = [spawn("mint", p, "-w", ws, "--json", env=_mint_env(anvil)) for _ in range(2)]
    outs = [pr.communicate(timeout=300) for pr in procs]
    codes = sorted(pr.returncode for pr in procs)
    assert codes == [0, 2], [o[1].decode()[-300:] for o in outs]
    assert any(b"already token" in o[1] for o in outs)
    assert _minted(anvil, ws) == n0 + 1


def test_a_chain_kept_in_a_folder_not_made_yet_is_saved_and_comes_back(tmp_path):
    """``bench`` keeps its chain in the workspace's anvil folder, which a fresh workspace lacks:
    the save at stop failed unseen, and every token the bench minted was gone."""
    state = tmp_path / "ws" / "anvil" / "bench-anvil.json"
    with Anvil(state) as node:
        with connect(rpc_url=node.url, workspace=tmp_path / "ws") as c:
            c.w3.provider.make_request("evm_mine", [])
            c.w3.provider.make_request("evm_mine", [])
            mined = c.w3.eth.block_number
    assert state.exists()
    with Anvil(state) as node:
        with connect(rpc_url=node.url, workspace=tmp_path / "ws") as c:
            assert c.w3.eth.block_number == mined == 2
