"""Kills mid-write, chain faults and concurrency: nothing half-written is used, nothing minted is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import proofmint
from proofmint.circuits import package
from proofmint.errors import ChainError, NotFoundError
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier.anvil import DEV_CHAIN_ID, _free_port, answers
from proofmint.verifier.client import connect
from proofmint.verifier.records import deployment

from ..conftest import run_cli


def _spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    """The CLI in its own process group, so a kill takes its ezkl child with it."""
    return subprocess.Popen([sys.executable, "-m", "proofmint", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})


def _kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _wait_for(predicate, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        time.sleep(0.05)


def test_sigkill_during_setup_leaves_no_usable_partial_circuit(zoo, circuits, tmp_path):
    work = tmp_path / "ws"  # the development SRS is the machine's, shared
    circuits_dir = Workspace.resolve(work).circuits()
    r = run_cli("compile", zoo["mlp"].onnx, "-w", work, env={"PROOFMINT_FAILPOINT": "compile:keys-written"})
    assert r.returncode == 2 and "died" in r.stderr, r.stderr  # the compile worker was killed
    assert any(circuits_dir.glob("*/.tmp-*.key"))  # killed with the keys half-placed
    partial = [d for d in circuits_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert partial and not any((d / "package.json").exists() for d in partial)
    assert not any((d / "pk.key").exists() for d in partial)  # only .tmp-* debris
    with pytest.raises(NotFoundError):
        package.load(Workspace.resolve(work), partial[0].name)

    again = run_cli("compile", zoo["mlp"].onnx, "-w", work, "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    pkg = package.load(Workspace.resolve(work), result["circuit_id"])
    assert pkg.pk.stat().st_size == pkg.pk_bytes
    assert not list(Path(pkg.dir).glob(".tmp-*"))
    out = tmp_path / "p.json"
    assert run_cli("prove", pkg.circuit_id, "--input", zoo["mlp"].input, "--out", out, "-w", work).returncode == 0
    assert proofmint.verify(out, workspace=work).valid


def test_sigkill_during_proving_writes_no_bundle(zoo, circuits, ws, tmp_path):
    out = tmp_path / "p.json"
    before = set(ws.rglob("*"))
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", zoo["lenet"].input, "--out", out,
                "-w", ws, env={"PROOFMINT_FAILPOINT": "prove:proof-written"})
    assert r.returncode == 2 and "died" in r.stderr, r.stderr  # the prover was killed after ezkl.prove
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    assert set(ws.rglob("*")) == before  # proving writes nothing into the workspace
    again = run_cli("prove", circuits["lenet"].circuit_id, "--input", zoo["lenet"].input, "--out", out, "-w", ws)
    assert again.returncode == 0 and proofmint.verify(out, workspace=ws).valid


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
        _wait_for(lambda: answers(f"http://127.0.0.1:{port}"), 30)
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


def test_two_concurrent_compiles_end_with_one_valid_circuit(zoo, ws, tmp_path):
    work = tmp_path / "ws"  # the development SRS is the machine's, shared
    procs = [_spawn("compile", zoo["generator"].onnx, "-w", work, "--json") for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    ids = {json.loads(o[0])["circuit_id"] for o in outs}
    assert len(ids) == 1
    dirs = [d for d in Workspace.resolve(work).circuits().iterdir() if not d.name.startswith(".")]
    assert len(dirs) == 1 and not list(dirs[0].glob(".tmp-*"))
    pkg = package.load(Workspace.resolve(work), ids.pop())
    assert pkg.pk.stat().st_size == pkg.pk_bytes


def test_two_concurrent_mints_of_one_proof_exactly_one_succeeds(deployed, circuits, zoo, ws, anvil, tmp_path):
    p = _fresh_proof(circuits, zoo, ws, tmp_path, 12, "c")
    n0 = _minted(anvil, ws)
    procs = [_spawn("mint", p, "-w", ws, "--json", env=_mint_env(anvil)) for _ in range(2)]
    outs = [pr.communicate(timeout=300) for pr in procs]
    codes = sorted(pr.returncode for pr in procs)
    assert codes == [0, 2], [o[1].decode()[-300:] for o in outs]
    assert any(b"already token" in o[1] for o in outs)
    assert _minted(anvil, ws) == n0 + 1
