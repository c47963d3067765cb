"""One chain per workspace: every command attaches to the anvil the first one started, the chain
dies with its keeper, comes back from a kill with every block, and stops when nobody uses it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import proofmint
from proofmint.store import Workspace
from proofmint.verifier.chain import keeper
from proofmint.verifier.chain.anvil import workspace_chain
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.records import deployment

from ...conftest import run_cli, tiny_inputs
from .conftest import copy_workspace


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def chain_processes(ws: Path) -> list[int]:
    """Every keeper and anvil running for this workspace (by its folder on their command line)."""
    folder = str(Workspace.resolve(ws).anvil_dir()).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.startswith(folder) for a in argv) and _alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def _minted(ws) -> tuple[int, int]:
    with connect(workspace=ws) as c:
        d = deployment(c)
        return c.call(d.token.functions.totalMinted(), d.abi), c.w3.eth.block_number


def _prove(circuit: str, ws: Path, tmp_path: Path, seed: int) -> Path:
    inp = tmp_path / f"in-{seed}.json"
    inp.write_text(json.dumps({"input_data": [tiny_inputs(1, seed)[0]]}))
    return proofmint.prove(circuit, input=inp, out=tmp_path / f"p-{seed}.json", workspace=ws).bundles[0]


def test_commands_attach_to_one_chain_and_the_last_one_out_stops_it(deployed_tiny, tiny_circuit, tmp_path):
    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    with workspace_chain(Workspace.resolve(ws)) as mine:
        # a CLI mint (its own process, no --rpc-url) lands on this very chain
        bundle = _prove(tiny_circuit.circuit_id, ws, tmp_path, 101)
        r = run_cli("mint", bundle, "-w", ws, "--json")
        assert r.returncode == 0, r.stderr
        token = json.loads(r.stdout)["token_id"]
        status = json.loads(run_cli("chain", "status", "-w", ws, "--json").stdout)
        assert (status["rpc_url"], status["pid"]) == (mine.rpc_url, mine.pid)
        shown = run_cli("show", str(token), "-w", ws, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["token_id"] == token, shown.stderr
        assert sorted(chain_processes(ws)) == sorted([mine.keeper_pid, mine.pid])  # one keeper, one anvil
        assert _minted(ws)[0] == token
    assert _gone(mine.keeper_pid) and _gone(mine.pid)  # nobody uses it: saved and stopped
    assert chain_processes(ws) == [] and not proofmint.chain_status(workspace=ws).running
    assert _minted(ws)[0] == token  # started again from the state file


def test_a_killed_anvil_comes_back_on_its_port_with_every_block(deployed_tiny, tiny_circuit, tmp_path):
    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    up = proofmint.chain_up(workspace=ws)
    try:
        m = proofmint.mint(_prove(tiny_circuit.circuit_id, ws, tmp_path, 102), workspace=ws)
        before = _minted(ws)
        os.kill(up.pid, signal.SIGKILL)
        assert _gone(up.pid)
        after = proofmint.chain_status(workspace=ws)
        deadline = time.monotonic() + 30
        while not (after.running and after.pid != up.pid):
            assert time.monotonic() < deadline, after
            time.sleep(0.05)
            after = proofmint.chain_status(workspace=ws)
        assert (after.rpc_url, after.keeper_pid) == (up.rpc_url, up.keeper_pid)  # same URL, same keeper
        assert _minted(ws) == before and before[0] == m.token_id
        assert "restarting from block" in (Workspace.resolve(ws).anvil_dir() / keeper.LOG).read_text()
    finally:
        assert proofmint.chain_down(workspace=ws).stopped


def test_a_killed_keeper_takes_anvil_with_it_and_the_next_command_loses_no_block(deployed_tiny, tiny_circuit,
                                                                                 tmp_path):
    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    up = proofmint.chain_up(workspace=ws)
    m = proofmint.mint(_prove(tiny_circuit.circuit_id, ws, tmp_path, 103), workspace=ws)
    before = _minted(ws)
    os.kill(up.keeper_pid, signal.SIGKILL)
    assert _gone(up.pid, timeout=5)  # PR_SET_PDEATHSIG: anvil does not outlive its keeper
    assert not proofmint.chain_status(workspace=ws).running
    assert _minted(ws) == before and before[0] == m.token_id  # a fresh keeper, from the state file
    assert proofmint.chain_down(workspace=ws).stopped  # `chain up`'s pin held it until now


def test_a_killed_user_is_noticed_and_the_chain_stops_saved(deployed_tiny, tmp_path):
    """A command killed with SIGKILL can't stop the chain itself: the keeper sees its lock go."""
    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    code = ("import sys, time; from proofmint.store import Workspace; "
            "from proofmint.verifier.chain.anvil import workspace_chain\n"
            "with workspace_chain(Workspace.resolve(sys.argv[1])) as s:\n"
            "    print(s.keeper_pid, s.pid, flush=True); time.sleep(600)")
    user = subprocess.Popen([sys.executable, "-c", code, str(ws)], stdout=subprocess.PIPE, text=True)
    keeper_pid, anvil_pid = map(int, user.stdout.readline().split())
    with workspace_chain(Workspace.resolve(ws)) as mine:  # a second user, then the first is killed
        assert mine.keeper_pid == keeper_pid
        user.kill()
        user.wait()
        time.sleep(2 * keeper.IDLE_EXIT_S)
        assert _alive(keeper_pid)  # still used (by this test)
    assert _gone(keeper_pid) and _gone(anvil_pid)
    user = subprocess.Popen([sys.executable, "-c", code, str(ws)], stdout=subprocess.PIPE, text=True)
    keeper_pid, anvil_pid = map(int, user.stdout.readline().split())
    user.kill()  # the only user dies: the keeper notices, saves, and stops anvil
    user.wait()
    assert _gone(keeper_pid) and _gone(anvil_pid)
    assert json.loads((Workspace.resolve(ws).anvil_dir() / keeper.STATE).read_text())["best_block_number"]


def test_an_older_proofmints_detached_anvil_is_stopped_not_joined(deployed_tiny, tmp_path):
    """Before the keeper, `chain up` left anvil writing the state file itself: the first start
    stops it (after checking it is that anvil) and carries on from the state it saved."""
    from proofmint.verifier import toolchain
    from proofmint.verifier.chain.anvil import LEGACY_RECORD, answers

    from .conftest import free_port

    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    folder = Workspace.resolve(ws).anvil_dir()
    port = free_port()
    old = subprocess.Popen([str(toolchain.anvil_path()), "--port", str(port), "--state", str(folder / keeper.STATE),
                            "--silent"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not answers(f"http://127.0.0.1:{port}"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        keeper.rpc(f"http://127.0.0.1:{port}", "anvil_mine", ["0x3"])
        head = int(keeper.rpc(f"http://127.0.0.1:{port}", "eth_blockNumber"), 16)
        (folder / LEGACY_RECORD).write_text(json.dumps({"pid": old.pid, "port": port,
                                                        "rpc_url": f"http://127.0.0.1:{port}"}))
        with connect(workspace=ws) as c:
            assert old.wait(15) is not None  # stopped (SIGINT: it dumped its state first)
            assert c.rpc_url != f"http://127.0.0.1:{port}" and c.w3.eth.block_number == head
        assert not (folder / LEGACY_RECORD).exists()
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


@pytest.mark.parametrize("host,warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_serve_beyond_loopback_says_what_it_exposes(deployed_tiny, tmp_path, host, warned):
    from .conftest import Serve

    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    node = Serve(ws, tmp_path / "serve.log", "--host", host)
    node.url = f"http://127.0.0.1:{node.port}"
    node.start()
    try:
        log = node.log.read_text()
        assert ("exposes this node beyond this machine" in log) == warned, log
        node_dir = Workspace.resolve(ws).node_queue().parent
        assert oct((node_dir / "queue.sqlite").stat().st_mode & 0o777) == "0o600"
        assert oct((node_dir / "bundles").stat().st_mode & 0o777) == "0o700"
        assert oct((node_dir / "token").stat().st_mode & 0o777) == "0o600"
    finally:
        node.stop()
