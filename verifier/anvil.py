"""The embedded chain: an anvil process whose state lives in the workspace.

For the length of a command (:class:`Anvil` is a context manager), or in the background across
commands (``proofmint chain up|down|status``). anvil's state is dumped to the workspace every
second and on SIGINT, so contracts and tokens survive restarts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from proofmint.errors import ChainError, UsageError
from proofmint.store import Workspace, atomic_write_json, read_json

from . import toolchain

DEV_CHAIN_ID = 31337
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    """Whether a JSON-RPC node answers at ``url`` (within 2 s)."""
    from web3 import Web3

    try:
        return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2})).is_connected()
    except Exception:  # any failure to connect means: not (yet) answering
        return False


class Anvil:
    """An anvil process on a free loopback port, its state kept in ``state_file``.

    States: created -> running (``start`` or ``with``) -> stopped. ``stop`` is idempotent;
    starting a running node, or using the URL of one that isn't running, is an error.
    """

    def __init__(self, state_file: Path, *, chain_id: int = DEV_CHAIN_ID, port: int = 0,
                 pid: int | None = None):
        self.state_file = Path(state_file)
        self.chain_id = chain_id
        self.port = port
        self.pid = pid  # a background node started by another command: attach to stop it
        self._proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.pid is not None and _alive(self.pid, self._proc)

    @property
    def url(self) -> str:
        if not self.port:
            raise UsageError("this anvil was never started: no URL yet — call start() or use it in a `with`")
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Anvil":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, *, detach: bool = False) -> "Anvil":
        if self.running:
            raise UsageError(f"anvil already runs at {self.url} (pid {self.pid})")
        self.port = self.port or _free_port()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.state_file.parent / "anvil.log"
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [str(toolchain.anvil_path()), "--host", "127.0.0.1", "--port", str(self.port),
                 "--chain-id", str(self.chain_id), "--state", str(self.state_file),
                 "--state-interval", "1", "--silent"],
                stdout=log, stderr=log, start_new_session=detach,
            )
        self.pid = self._proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.pid = None
                raise ChainError(f"anvil exited at start (code {self._proc.returncode}); see {log_path}")
            if answers(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """SIGINT lets anvil dump its state before it exits; SIGKILL after STOP_TIMEOUT."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(self.pid, self._proc):
            time.sleep(0.1)
        if _alive(self.pid, self._proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(5)
        self.pid = None


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def embedded(ws: Workspace) -> Anvil:
    """The workspace's embedded anvil (not started)."""
    return Anvil(ws.anvil_dir() / "anvil-state.json")  # Anvil.start makes the folder


# ---- background chain (proofmint chain up/down/status) ----

@dataclass
class ChainStatus:
    running: bool
    state_file: str
    rpc_url: str | None = None
    pid: int | None = None
    port: int | None = None
    stopped: bool = False  # chain_down: whether a running chain was stopped

    def to_dict(self) -> dict:
        return asdict(self)


def _record(ws: Workspace) -> Path:
    return ws.anvil_dir() / "anvil.json"


def chain_status(*, workspace: str | Path | Workspace | None = None) -> ChainStatus:
    """Whether a background anvil runs for this workspace."""
    ws = Workspace.resolve(workspace)
    state = str(ws.anvil_dir() / "anvil-state.json")
    f = _record(ws)
    if f.is_file():
        info = read_json(f)
        if _alive(info["pid"], None) and answers(info["rpc_url"]):
            return ChainStatus(True, state, info["rpc_url"], info["pid"], info["port"])
    return ChainStatus(False, state)


def chain_up(*, workspace: str | Path | Workspace | None = None) -> ChainStatus:
    """Start anvil in the background for this workspace (no-op if it already runs)."""
    ws = Workspace.resolve(workspace)
    status = chain_status(workspace=ws)
    if status.running:
        return status
    node = embedded(ws).start(detach=True)
    atomic_write_json(_record(ws), {"pid": node.pid, "port": node.port, "rpc_url": node.url})
    return ChainStatus(True, str(node.state_file), node.url, node.pid, node.port)


def chain_down(*, workspace: str | Path | Workspace | None = None) -> ChainStatus:
    """Stop the background anvil; it saves its state first."""
    ws = Workspace.resolve(workspace)
    status = chain_status(workspace=ws)
    if status.running:
        Anvil(Path(status.state_file), port=status.port or 0, pid=status.pid).stop()
    _record(ws).unlink(missing_ok=True)
    return ChainStatus(False, status.state_file, stopped=status.running)
