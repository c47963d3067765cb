"""`proofmint serve` as a user runs it: a real process on the session's anvil, jobs over HTTP,
a kill mid-queue, the security of what costs money, a burst (the explorer in Chromium: test_explorer)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import proofmint
from proofmint.verifier.node.queue import Queue
from proofmint.store import Workspace
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.records import deployment

from ...conftest import run_cli


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeProcess:
    """`proofmint serve` in a subprocess, its log in a file."""

    def __init__(self, ws: Path, rpc_url: str, log: Path, *extra: str):
        self.ws, self.rpc_url, self.log, self.extra = Path(ws), rpc_url, log, extra
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NodeProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proofmint", "serve", "--port", str(self.port), "--rpc-url", self.rpc_url,
             "--workspace", str(self.ws), *self.extra],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the node exited: {self.log.read_text()[-2000:]}")
            try:
                get(f"{self.url}/api/health")
                return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the node did not answer in 120 s")

    @property
    def token(self) -> str:
        return (self.ws / "node" / "token").read_text().strip()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def request(url: str, body=None, token: str | None = None, method: str | None = None,
            raw: bytes | None = None) -> tuple[int, "http.client.HTTPMessage", dict]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=data, headers=headers, method=method or ("POST" if data else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return r.status, r.headers, json.loads(text) if "json" in r.headers.get("Content-Type", "") else {}
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {"raw": text.decode(errors="replace")}
        return exc.code, exc.headers, payload  # an HTTPMessage: names match in any case


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _mlp_rows(zoo, rows: range) -> list[list[float]]:
    """Held-out wine rows no other test mints (they mint rows 0-3, 10-12 and 20-27)."""
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    assert len(calib) >= 13 * rows.stop
    return [calib[13 * r:13 * r + 13] for r in rows]


def _wait(node: NodeProcess, job: str, until, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = get(f"{node.url}/api/jobs/{job}")
        if until(view):
            return view
        time.sleep(0.5)
    raise AssertionError(f"job {job} did not get there in {timeout} s: {view}")


@pytest.fixture(scope="module")
def node(deployed, circuits, ws, anvil, tmp_path_factory):
    n = NodeProcess(ws, anvil.url, tmp_path_factory.mktemp("node") / "node.log").start()
    yield n
    n.stop()


def test_eight_inputs_over_http_survive_a_kill_with_no_lost_job_and_no_duplicate_token(
        node, zoo, circuits, ws, anvil):
    circuit = circuits["mlp"].circuit_id
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        before = d.token.functions.totalMinted().call()
    status, _, r = request(f"{node.url}/api/jobs", {"circuit": circuit[:16], "inputs": _mlp_rows(zoo, range(28, 36)),
                                                    "mint": True}, node.token)
    assert status == 202 and r["items"] == 8, r
    job = r["job"]
    _wait(node, job, lambda v: v["progress"]["done"] >= 2)
    node.kill()  # mid-queue: some items done, one maybe proving or minting
    interrupted = Queue(Workspace.resolve(ws).node_queue()).job(job)
    assert interrupted is not None and interrupted.progress["done"] < 8
    node.start()
    view = _wait(node, job, lambda v: v["status"] in ("done", "failed", "partial"))
    assert view["status"] == "done", view
    tokens = [t for item in view["items"] for t in item["tokens"]]
    assert len(tokens) == 8 and len(set(tokens)) == 8
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        assert d.token.functions.totalMinted().call() == before + 8  # nothing minted twice
        inferences = {d.token_record(t)["inferenceId"] for t in tokens}
        provers = {d.token_record(t)["prover"] for t in tokens}
    assert len(inferences) == 8
    assert provers == {c.address}  # the node names its operator (its signing key) as every token's prover
    for item in view["items"]:
        status, _, bundle = request(node.url + item["bundle_url"])
        assert status == 200 and bundle["circuit_id"] == circuit
        path = Path(ws) / "node" / f"check-{item['idx']}.json"
        path.write_text(json.dumps(bundle))
        assert proofmint.verify(path, workspace=ws).valid


def test_the_cli_twins_talk_to_the_node(node, zoo, circuits, ws, tmp_path):
    inp = tmp_path / "two.jsonl"
    inp.write_text("\n".join(json.dumps({"input_data": [x]}) for x in _mlp_rows(zoo, range(4, 6))))
    r = run_cli("jobs", "submit", circuits["mlp"].circuit_id, "--input", inp, "--node", node.url,
                "--workspace", ws, "--json")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)["job"]
    r = run_cli("jobs", "wait", job, "--node", node.url, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "done", r.stderr
    r = run_cli("jobs", "status", job, "--node", node.url, "--json")
    assert json.loads(r.stdout)["progress"]["done"] == 2


def test_what_costs_money_needs_the_token_and_bad_requests_are_4xx(node, zoo, circuits, ws):
    circuit = circuits["mlp"].circuit_id
    good = {"circuit": circuit, "inputs": _mlp_rows(zoo, range(6, 7))}
    jobs_before = len(Queue(Workspace.resolve(ws).node_queue()).jobs(10_000))
    for token in (None, "wrong-token-" + "x" * 20, node.token + "x"):
        status, headers, r = request(f"{node.url}/api/jobs", good, token)
        assert status == 401 and "Bearer" in r["error"], (token, r)
    assert len(Queue(Workspace.resolve(ws).node_queue()).jobs(10_000)) == jobs_before  # nothing queued
    cases = [
        (request(f"{node.url}/api/jobs", raw=b"{not json", token=node.token), 400),
        (request(f"{node.url}/api/jobs", {**good, "surprise": 1}, node.token), 400),
        (request(f"{node.url}/api/jobs", {**good, "inputs": [[1.0] * 12]}, node.token), 400),
        (request(f"{node.url}/api/jobs", {**good, "inputs": [[float("1e30")] * 13]}, node.token), 400),
        (request(f"{node.url}/api/jobs", {**good, "circuit": "ffffffffffff"}, node.token), 404),
        (request(f"{node.url}/api/jobs", {**good, "creator": "me"}, node.token), 400),
        (_announce_oversized(node, 8 << 20), 413),
    ]
    for (status, _, r), expected in cases:
        assert status == expected and isinstance(r.get("error"), str) and "Traceback" not in r["error"], (status, r)
    assert "has 12 values, the circuit expects 13" in cases[2][0][2]["error"]  # the CLI's own message
    assert "far outside the calibrated range" in cases[3][0][2]["error"]
    assert len(Queue(Workspace.resolve(ws).node_queue()).jobs(10_000)) == jobs_before


def _announce_oversized(node: NodeProcess, size: int) -> tuple[int, "http.client.HTTPMessage", dict]:
    """Announce a body of ``size`` bytes and read the answer before sending any of it: the node
    refuses by Content-Length, without reading (or waiting for) the body."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    conn.putrequest("POST", "/api/jobs")
    for k, v in (("Content-Type", "application/json"), ("Content-Length", str(size)),
                 ("Authorization", f"Bearer {node.token}")):
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    status, headers, body = r.status, r.headers, json.loads(r.read())
    conn.close()
    return status, headers, body


def test_the_explorer_changes_nothing(node, ws, anvil):
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        block = c.w3.eth.block_number
    pending = get(f"{node.url}/api/health")["pending"]
    for path in ("/", "/models", "/queue", "/tokens/1", "/api/jobs/nope"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, _, _ = request(node.url + path, raw=b"{}", method=method)
            assert status in (405, 401) if path.startswith("/api") else status == 405, (path, method, status)
    for path in ("/", "/models", "/queue", "/tokens/1"):
        with urllib.request.urlopen(node.url + path, timeout=60) as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        assert c.w3.eth.block_number == block
    assert get(f"{node.url}/api/health")["pending"] == pending


def test_a_burst_of_200_submissions_is_accepted_or_refused_never_lost(deployed, circuits, zoo, ws, anvil,
                                                                       tmp_path):
    """A bounded queue (20 items here): every submission gets 202 or 429 with Retry-After, every
    accepted job is in the queue, and the node answers its health check during the burst."""
    node = NodeProcess(tmp_path / "burst-ws", anvil.url, tmp_path / "burst.log", "--max-queue", "20").start()
    try:
        shutil.copytree(Path(circuits["mlp"].package.dir),
                        Workspace.resolve(tmp_path / "burst-ws").circuit_dir(circuits["mlp"].circuit_id))
        body = {"circuit": circuits["mlp"].circuit_id, "inputs": _mlp_rows(zoo, range(7, 8))}
        accepted, refused, slowest = [], 0, 0.0
        for i in range(200):
            status, headers, r = request(f"{node.url}/api/jobs", body, node.token)
            if status == 202:
                accepted.append(r["job"])
            else:
                assert status == 429 and int(headers["Retry-After"]) > 0, (status, r)
                refused += 1
            if i % 20 == 0:
                t = time.perf_counter()
                get(f"{node.url}/api/health")
                slowest = max(slowest, time.perf_counter() - t)
        assert len(accepted) + refused == 200 and 20 <= len(accepted) < 200 and refused > 0
        for job in accepted:
            assert get(f"{node.url}/api/jobs/{job}")["items"], job
        print(f"\nburst: {len(accepted)} accepted, {refused} refused (429), slowest health check {slowest:.3f} s")
        assert slowest < 5
    finally:
        node.stop()

