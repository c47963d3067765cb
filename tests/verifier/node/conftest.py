"""A tiny circuit for the node's and the chain's tests: a hand-built 6-8-3 Gemm-Relu-Gemm graph
(logrows 9 here: a proof in about a second), deployed on its workspace's embedded chain.

``deployed_tiny`` is that workspace with its chain stopped; :func:`copy_workspace` gives a
test its own copy — its own chain, already holding the contracts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

import proofmint
from proofmint.store import Workspace

from ...conftest import write_tiny_model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """The folder of the tiny model: model.onnx and input.json."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_circuit(tiny, tmp_path_factory):
    return proofmint.compile(tiny / "model.onnx", workspace=tmp_path_factory.mktemp("tiny-ws"))


@pytest.fixture(scope="session")
def deployed_tiny(tiny_circuit, tmp_path_factory) -> Path:
    """A workspace with the tiny circuit, deployed on its embedded chain (stopped again)."""
    root = tmp_path_factory.mktemp("tiny-deployed") / "ws"
    ws = Workspace.resolve(root)
    shutil.copytree(tiny_circuit.package.dir, ws.circuit_dir(tiny_circuit.circuit_id))
    proofmint.deploy(tiny_circuit.circuit_id, workspace=ws)
    assert not proofmint.chain_status(workspace=ws).running  # the last user out stopped it
    return root


def copy_workspace(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(app) -> Iterator[str]:
    """An ASGI app (the node's :func:`~proofmint.verifier.node.http.create_app`) served by uvicorn
    on a free loopback port, in a thread of this process; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def get_json(url: str, timeout: float = 30) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Serve:
    """`proofmint serve` on the workspace's embedded chain, in its own process group."""

    def __init__(self, ws: Path, log: Path, *extra: str, env: dict | None = None):
        self.ws, self.log, self.extra, self.env = Path(ws), Path(log), extra, env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict | None = None, timeout: float = 120) -> "Serve":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proofmint", "serve", "--port", str(self.port), "--workspace", str(self.ws),
             *self.extra], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **self.env, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self  # a failpoint may kill it at once: the caller looks
            try:
                get_json(f"{self.url}/api/health", timeout=2)
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the node did not answer in {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def token(self) -> str:
        return (self.ws / "node" / "token").read_text().strip()

    def kill(self, group: bool = False) -> None:
        """SIGKILL the node (``group``: its whole process group, workers included)."""
        if self.alive:
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill(group=True)
