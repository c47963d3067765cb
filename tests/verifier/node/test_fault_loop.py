"""The fault loop: `proofmint serve` on its workspace's embedded chain, a job per round, and a
SIGKILL at a random point of each — the node, its whole process group, anvil, the chain's
keeper, a failpoint while proving, minting or writing the chain's state, a CLI mint during serve.

At the end every accepted item is done exactly once, the tokens on-chain are the items done
(plus what the CLI minted), no token id is held twice, the state file parsed at every read, no
worker outlived its node, and a restart of the chain loses no block."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from eth_utils import keccak

import proofmint
from proofmint.verifier.node.queue import Queue
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier.chain import keeper
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.records import deployment

from ...conftest import tiny_inputs
from .conftest import Serve, copy_workspace, get_json
from .test_chain import _gone, chain_processes
from .test_node import request

ROUNDS = 24
FAULTS = ["node", "group", "anvil", "keeper", "fp-prove", "fp-commit", "fp-record", "fp-state", "cli-mint",
          "cli-mint-killed"]
SEED = int(os.environ.get("PROOFMINT_FAULT_SEED", "28"))


class StateWatcher(threading.Thread):
    """Reads the chain's state file (and saved.json) every 50 ms: each read must parse."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.reads, self.bad = folder, 0, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for name in (keeper.STATE, keeper.SAVED):
                try:
                    text = (self.folder / name).read_bytes()
                except FileNotFoundError:
                    continue
                try:
                    json.loads(text)
                    self.reads += 1
                except ValueError as exc:
                    self.bad.append(f"{name}: {exc}")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _keeper_down(ws: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while proofmint.chain_status(workspace=ws).running:
        assert time.monotonic() < deadline, "the unused chain did not stop"
        time.sleep(0.05)


def _wait_dead(node: Serve, timeout: float) -> bool:
    try:
        node.proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_kill_minus_nine_anywhere_loses_nothing_and_mints_nothing_twice(deployed_tiny, tiny_circuit, tmp_path):
    rng = random.Random(SEED)
    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    folder = Workspace.resolve(ws).anvil_dir()
    circuit = tiny_circuit.circuit_id
    cli_bundles = []
    for k, x in enumerate(tiny_inputs(8, seed=500)):
        (tmp_path / f"cli-{k}.json").write_text(json.dumps({"input_data": [x]}))
        cli_bundles.append(proofmint.prove(circuit, input=tmp_path / f"cli-{k}.json", out=tmp_path / f"cli-{k}.p.json",
                                           workspace=ws).bundles[0])
    watcher = StateWatcher(folder)
    watcher.start()
    node = Serve(ws, tmp_path / "serve.log", "--workers", "1").start()
    plan = (FAULTS * (ROUNDS // len(FAULTS) + 1))[:ROUNDS]
    rng.shuffle(plan)
    accepted: dict[str, int] = {}
    done_faults: Counter = Counter()
    orphans: list[int] = []
    started = time.monotonic()

    def restart(env: dict | None = None) -> None:
        if node.alive:
            node.kill(group=True)
        node.start(env=env)

    def kill_node(group: bool) -> None:
        kids = _children(node.proc.pid)
        node.kill(group=group)
        orphans.extend(k for k in kids if not _gone(k, timeout=10))  # workers die with their node

    try:
        for rnd, fault in enumerate(plan):
            if not node.alive:
                restart()
            items = tiny_inputs(rng.choice([1, 2, 3]), seed=rnd)
            status, job = _submit(node, circuit, items)
            assert status == 202, job
            accepted[job["job"]] = len(items)
            delay = rng.uniform(0.0, 2.5)
            if fault in ("node", "group"):
                time.sleep(delay)  # proving or minting, whichever it is at
                kill_node(group=fault == "group")
            elif fault in ("anvil", "keeper"):
                time.sleep(delay)
                st = proofmint.chain_status(workspace=ws)
                if st.running:
                    os.kill(st.pid if fault == "anvil" else st.keeper_pid, signal.SIGKILL)
                    if fault == "keeper":
                        assert _gone(st.pid, timeout=5), "anvil outlived its keeper"
            elif fault in ("fp-commit", "fp-record", "fp-prove"):
                point = {"fp-commit": "mint:after-commit", "fp-record": "mint:before-record",
                         "fp-prove": "prove:proof-written"}[fault]
                restart(env={"PROOFMINT_FAILPOINT": point})
                if fault == "fp-prove":  # a worker dies; the node proves it again, and again
                    time.sleep(2 + delay)
                else:
                    _wait_dead(node, 120)
                kill_node(group=True)
            elif fault == "fp-state":  # the keeper dies between writing the temp state and the rename
                kill_node(group=True)
                _keeper_down(ws)
                restart(env={"PROOFMINT_FAILPOINT": "chain:state-written"})
                deadline = time.monotonic() + 120
                while not list(folder.glob(".tmp-*")) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert list(folder.glob(".tmp-*")), "no state write was interrupted"
                kill_node(group=True)
                _keeper_down(ws)
            else:  # a CLI mint (its own process, no --rpc-url) while the node runs
                bundle = cli_bundles.pop()
                cli = subprocess.Popen([sys.executable, "-m", "proofmint", "mint", str(bundle), "-w", str(ws),
                                        "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
                if fault == "cli-mint-killed":
                    time.sleep(delay)
                    os.killpg(cli.pid, signal.SIGKILL)
                out, err = cli.communicate(timeout=300)
                if fault == "cli-mint":
                    assert cli.returncode == 0, err.decode()[-500:]
            done_faults[fault] += 1
        if not node.alive:
            restart()
        deadline = time.monotonic() + 600
        while not all(get_json(f"{node.url}/api/jobs/{j}")["status"] in ("done", "failed", "partial")
                      for j in accepted):
            assert time.monotonic() < deadline, "jobs did not finish"
            time.sleep(0.5)
        loop_s = time.monotonic() - started
        views = [get_json(f"{node.url}/api/jobs/{j}") for j in accepted]
    finally:
        node.stop()
        watcher.stop.set()
        watcher.join()

    # every accepted item ended exactly once: done, with one token; no token id held twice
    assert all(v["status"] == "done" for v in views), [v for v in views if v["status"] != "done"]
    items = [i for v in views for i in v["items"]]
    assert len(items) == sum(accepted.values())
    assert all(len(i["tokens"]) == 1 for i in items)
    node_tokens = [i["tokens"][0] for i in items]
    assert len(set(node_tokens)) == len(node_tokens)
    queue = Queue(Workspace.resolve(ws).node_queue())
    assert sorted(t for *_, t in queue.minted_items()) == sorted(node_tokens)

    # the chain stopped with the node (nobody uses it), no worker outlived its node, no state read failed
    _keeper_down(ws)
    assert chain_processes(ws) == [] and orphans == []
    assert watcher.bad == [] and watcher.reads > 100

    # restarted from its state file: every token is there, each the proof of the item that holds it
    with connect(workspace=ws) as c:
        d = deployment(c)
        total = c.call(d.token.functions.totalMinted(), d.abi)
        on_chain = {t: d.token_record(t)["proofHash"] for t in range(1, total + 1)}
        head = c.w3.eth.block_number
    for j, i, bundle, token in queue.minted_items():
        assert on_chain[token] == "0x" + keccak(load_bundle(bundle).proof_bytes).hex(), (j, i, token)
    cli_hashes = {"0x" + keccak(load_bundle(b).proof_bytes).hex() for b in
                  (tmp_path / f"cli-{k}.p.json" for k in range(8))}
    cli_minted = [t for t, h in on_chain.items() if h in cli_hashes]
    assert total == len(node_tokens) + len(cli_minted)  # tokens on-chain = items done (+ the CLI's)
    assert set(on_chain) == set(node_tokens) | set(cli_minted)
    assert len(set(on_chain.values())) == total  # a proof per token (batch 1): no inference twice
    with connect(workspace=ws) as c:
        assert c.w3.eth.block_number == head  # a second restart: still every block
    print(f"\nfault loop (seed {SEED}): {len(plan)} rounds in {loop_s:.0f} s, faults {dict(done_faults)}; "
          f"{len(items)} items in {len(accepted)} jobs, all done once; {total} tokens on-chain "
          f"({len(node_tokens)} the node's, {len(cli_minted)} CLI mints); {watcher.reads} state reads, all parsed; "
          f"head block {head}")


def _submit(node: Serve, circuit: str, inputs: list[list[float]]) -> tuple[int, dict]:
    status, _, body = request(f"{node.url}/api/jobs", {"circuit": circuit, "inputs": inputs, "mint": True},
                              node.token)
    return status, body


def test_a_chain_restarted_from_an_older_state_is_reconciled_at_start(deployed_tiny, tiny_circuit, tmp_path):
    """The queue says done, the chain lost the tokens (its state rolled back, as the issue's
    timer-written state did), and a CLI mint took one of their ids meanwhile: at start the node
    mints each lost item again, and no two items hold one id."""
    ws = copy_workspace(deployed_tiny, tmp_path / "ws")
    folder = Workspace.resolve(ws).anvil_dir()
    older = (folder / keeper.STATE).read_bytes()  # the chain before any mint
    node = Serve(ws, tmp_path / "serve.log").start()
    try:
        status, job = _submit(node, tiny_circuit.circuit_id, tiny_inputs(2, seed=700))
        assert status == 202, job
        view = _wait_final(node, job["job"])
    finally:
        node.stop()
    first = [i["tokens"][0] for i in view["items"]]
    assert view["status"] == "done" and len(set(first)) == 2
    _keeper_down(ws)
    (folder / keeper.STATE).write_bytes(older)  # the chain forgets both tokens
    (folder / keeper.SAVED).unlink()
    (tmp_path / "cli.json").write_text(json.dumps({"input_data": [tiny_inputs(1, seed=701)[0]]}))
    p = proofmint.prove(tiny_circuit.circuit_id, input=tmp_path / "cli.json", out=tmp_path / "cli.p.json",
                        workspace=ws).bundles[0]
    cli = proofmint.mint(p, workspace=ws)  # takes the first id the queue still holds
    assert cli.token_id == min(first)
    node = Serve(ws, tmp_path / "serve.log").start()
    try:
        view = _wait_final(node, job["job"], until=lambda v: v["status"] == "done" and all(
            i["tokens"] and i["tokens"][0] != cli.token_id for i in v["items"]))
        assert get_json(f"{node.url}/api/health")["pending"] == 0
    finally:
        node.stop()
    again = [i["tokens"][0] for i in view["items"]]
    assert cli.token_id not in again and len(set(again)) == 2
    queue = Queue(Workspace.resolve(ws).node_queue())
    with connect(workspace=ws) as c:
        d = deployment(c)
        assert c.call(d.token.functions.totalMinted(), d.abi) == 3  # the CLI's and the two items', once
        for j, i, bundle, token in queue.minted_items():
            assert d.token_record(token)["proofHash"] == "0x" + keccak(load_bundle(bundle).proof_bytes).hex()


def _wait_final(node: Serve, job: str, until=None, timeout: float = 300) -> dict:
    until = until or (lambda v: v["status"] in ("done", "failed", "partial"))
    deadline = time.monotonic() + timeout
    while True:
        view = get_json(f"{node.url}/api/jobs/{job}")
        if until(view):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.3)
