"""The embedded chain: one anvil per workspace, shared by every command that needs it.

Without ``--rpc-url``, a command enters :func:`workspace_chain`: the first one starts the
workspace's :mod:`keeper <proofmint.verifier.chain.keeper>` (which runs anvil, saves its state after
every block, and stops it when unused), every other one attaches to the same anvil — a CLI
``mint`` while ``serve`` runs included. The last command out stops the chain unless
``proofmint chain up`` pinned it. A transaction counts as done only once the saved state holds
its block (:func:`wait_saved`), so a kill of anything, anvil included, loses nothing a
command reported.

:class:`Anvil` is a bare anvil process for the length of a ``with`` (tests, benchmarks): it
dies with its parent; a state file given to it is loaded at start and saved at stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from proofmint import config
from proofmint.errors import ChainError, UsageError
from proofmint.store import Workspace, workspace_error

from proofmint.verifier.chain import keeper
from proofmint.verifier import toolchain

DEV_CHAIN_ID = 31337
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
SAVE_TIMEOUT = 30.0
LEGACY_RECORD = "anvil.json"  # `chain up` before the keeper: a detached anvil writing its own state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    """Whether a JSON-RPC node answers at ``url`` (within 2 s)."""
    try:
        keeper.rpc(url, "eth_chainId", timeout=2)
        return True
    except (OSError, ValueError, RuntimeError):  # any failure to connect means: not (yet) answering
        return False


class Anvil:
    """A bare anvil on a free loopback port (chain ``chain_id``), for the length of a ``with``.

    States: created -> running (``start`` or ``with``) -> stopped. ``stop`` is idempotent;
    starting a running node, or using the URL of one that isn't running, is an error. The
    process dies with the one that started it (``PR_SET_PDEATHSIG``). ``state_file``, where it
    exists, is loaded at start, and ``stop`` saves the chain into it (atomically).
    """

    def __init__(self, state_file: Path | None = None, *, chain_id: int = DEV_CHAIN_ID, port: int = 0):
        self.state_file = Path(state_file) if state_file else None
        self.chain_id = chain_id
        self.port = port
        self._proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    @property
    def url(self) -> str:
        if not self.port:
            raise UsageError("this anvil was never started: no URL yet — call start() or use it in a `with`")
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Anvil":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Anvil":
        if self.running:
            raise UsageError(f"anvil already runs at {self.url} (pid {self.pid})")
        self.port = self.port or _free_port()
        if self.state_file is not None:  # else stop's save fails, unseen, and the chain is lost
            try:
                self.state_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ChainError(f"can't keep the chain's state in {self.state_file.parent}: "
                                 f"{exc.strerror or exc}") from None
        load = ["--load-state", str(self.state_file)] if self.state_file and self.state_file.exists() else []
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall anvil
        self._proc = subprocess.Popen(
            [str(toolchain.anvil_path()), "--host", "127.0.0.1", "--port", str(self.port),
             "--chain-id", str(self.chain_id), "--silent", *keeper.ANVIL_FLAGS, *load],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, preexec_fn=functools.partial(keeper.die_with_parent, os.getpid()))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                why = self._log.read().decode(errors="replace").strip().splitlines()
                raise ChainError(f"anvil exited at start (code {self._proc.returncode}): "
                                 f"{why[-1] if why else 'no message'}")
            if answers(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            if self.state_file is not None:
                with contextlib.suppress(OSError, ValueError, RuntimeError):  # a dying anvil: keep the last one
                    keeper.write_atomic(self.state_file, keeper.dump(self.url))
            self._proc.kill()
        self._proc.wait(STOP_TIMEOUT)
        self._log.close()
        self._proc = None


# ---- the workspace chain ----

@dataclass
class ChainStatus:
    running: bool
    state_file: str
    rpc_url: str | None = None
    pid: int | None = None  # anvil's
    port: int | None = None
    stopped: bool = False  # chain_down: whether a running chain was stopped
    keeper_pid: int | None = None
    pinned: bool = False  # `chain up`: it runs until `chain down`, used or not
    saved_block: int | None = None  # the newest block in the state file

    def to_dict(self) -> dict:
        return asdict(self)


def _folder(ws: Workspace) -> Path:
    d = ws.anvil_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise workspace_error(d, exc) from None
    return d


def _lock(path: Path, mode: int) -> int:
    """An fd holding a blocking ``flock(mode)`` on ``path`` (close it to let go)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, mode)
    return fd


def _record(d: Path) -> dict | None:
    try:
        return json.loads((d / keeper.RECORD).read_text())
    except (OSError, ValueError):
        return None


def _keeper_runs(d: Path) -> bool:
    """Whether a keeper holds this chain's keeper lock (it does for as long as it lives)."""
    fd = keeper.try_lock(d / keeper.KEEPER_LOCK, fcntl.LOCK_EX)
    if fd is None:
        return True
    os.close(fd)
    return False


def _status(d: Path) -> ChainStatus:
    state, saved = str(d / keeper.STATE), keeper.saved_block(d)
    rec = _record(d) if _keeper_runs(d) else None
    pinned = (d / keeper.PINNED).exists()
    if rec is None:
        return ChainStatus(False, state, pinned=pinned, saved_block=saved if saved >= 0 else None)
    return ChainStatus(True, state, rec["rpc_url"], rec["anvil_pid"], rec["port"], keeper_pid=rec["keeper_pid"],
                       pinned=pinned, saved_block=saved if saved >= 0 else None)


def _is_keeper(pid: int, d: Path) -> bool:
    """Identity check before a signal: ``pid`` is this folder's keeper, not a reused pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b"keeper.py") for a in argv) and str(d).encode() in argv


def _answering(d: Path) -> ChainStatus | None:
    """The running chain once its anvil answers (its keeper may be starting or restarting it),
    or None when no keeper runs."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not _keeper_runs(d):
            return None
        rec = _record(d)
        if rec is not None and answers(rec["rpc_url"]):
            return _status(d)
        time.sleep(0.05)
    raise ChainError(f"the workspace chain's keeper runs but its anvil did not answer within "
                     f"{START_TIMEOUT:.0f} s — see {d / keeper.LOG}, or `proofmint chain down` and retry")


def _stop_legacy(d: Path) -> None:
    """An anvil that an older proofmint left running detached (``chain up``) writes the same
    state file on its own: stop it first, if it is what its record says (anvil, our state)."""
    legacy = d / LEGACY_RECORD
    try:
        pid = int(json.loads(legacy.read_text())["pid"])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, KeyError, TypeError):
        argv = []
    if argv and argv[0].endswith(b"anvil") and str(d / keeper.STATE).encode() in argv:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # it dumps its state, then exits
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and _alive(pid):
            time.sleep(0.1)
    legacy.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _start_keeper(d: Path) -> ChainStatus:
    _stop_legacy(d)
    last = _record(d) or {}  # a killed keeper's: its port, so the chain's URL stays the same
    args = [sys.executable, "-I", keeper.__file__, str(d), "--anvil", str(toolchain.anvil_path()),
            "--chain-id", str(DEV_CHAIN_ID), "--port", str(last.get("port", 0))]
    if config.failpoint():
        args += ["--failpoint", config.failpoint()]
    with open(d / keeper.LOG, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        rec = _record(d)
        if rec and rec.get("keeper_pid") == proc.pid and answers(rec["rpc_url"]):
            return _status(d)
        if proc.poll() is not None:
            lines = (d / keeper.LOG).read_text(errors="replace").strip().splitlines()
            raise ChainError(f"the embedded chain did not start (keeper exit {proc.returncode}): "
                             f"{lines[-1] if lines else 'no message'} — see {d / keeper.LOG}")
        time.sleep(0.05)
    raise ChainError(f"the embedded chain did not answer within {START_TIMEOUT:.0f} s — see {d / keeper.LOG}")


def _stop_keeper(d: Path) -> bool:
    """SIGTERM the keeper (it saves, stops anvil, exits); True once it is gone."""
    rec = _record(d)
    if not _keeper_runs(d):
        return False
    if rec is None or not _is_keeper(rec["keeper_pid"], d):
        raise ChainError(f"a process holds {d / keeper.KEEPER_LOCK} but is not the keeper its record names — "
                         "stop it by hand")
    with contextlib.suppress(ProcessLookupError):
        os.kill(rec["keeper_pid"], signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _keeper_runs(d):
        if time.monotonic() > deadline:
            raise ChainError(f"the chain keeper (pid {rec['keeper_pid']}) did not stop within "
                             f"{STOP_TIMEOUT:.0f} s — see {d / keeper.LOG}")
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def workspace_chain(ws: Workspace) -> Iterator[ChainStatus]:
    """Use the workspace's chain for the length of the block: attach to it, or start it.

    While inside, this process counts as a user (a shared lock on ``users.lock``, which the
    kernel drops if it dies); the last user out stops an unpinned chain, after it is saved."""
    d = _folder(ws)
    users = _lock(d / keeper.USERS_LOCK, fcntl.LOCK_SH)
    try:
        start = _lock(d / keeper.START_LOCK, fcntl.LOCK_EX)  # one starter at a time
        try:
            status = _answering(d) or _start_keeper(d)
        finally:
            os.close(start)
        yield status
    finally:
        os.close(users)
        _stop_if_unused(d)


def _stop_if_unused(d: Path) -> None:
    last = keeper.try_lock(d / keeper.USERS_LOCK, fcntl.LOCK_EX)
    if last is None:
        return  # others use it
    try:  # holding it exclusively: nobody attaches while it stops
        if not (d / keeper.PINNED).exists():
            with contextlib.suppress(ChainError):  # it stops by itself once it sees no user
                _stop_keeper(d)
    finally:
        os.close(last)


def wait_saved(ws: Workspace, block: int, block_hash: bytes, hash_at: Callable[[int], bytes | None]) -> None:
    """Return once the workspace chain's state file holds ``block`` (with hash ``block_hash``):
    a transaction is done only when a kill of anvil can no longer take it back. ``hash_at``:
    the live chain's hash of a block (None: it has no such block)."""
    d = ws.anvil_dir()
    deadline = time.monotonic() + SAVE_TIMEOUT
    while True:
        live = hash_at(block)
        if live is None or bytes(live) != bytes(block_hash):
            raise ChainError(f"block {block} was lost: anvil restarted from its saved state before saving it — "
                             "run the command again (a mint resumes; nothing is minted twice)")
        if keeper.saved_block(d) >= block:
            return
        if time.monotonic() > deadline:
            raise ChainError(f"the embedded chain did not save block {block} within {SAVE_TIMEOUT:.0f} s "
                             f"(its keeper died?) — see {d / keeper.LOG}, then run the command again")
        time.sleep(0.02)


def chain_status(*, workspace: str | Path | Workspace | None = None) -> ChainStatus:
    """Whether the workspace's chain runs, where, and the newest block its state file holds."""
    return _status(_folder(Workspace.resolve(workspace)))


def chain_up(*, workspace: str | Path | Workspace | None = None) -> ChainStatus:
    """Keep the workspace's chain running in the background, used or not, until `chain down`."""
    ws = Workspace.resolve(workspace)
    d = _folder(ws)
    (d / keeper.PINNED).touch()
    with workspace_chain(ws) as status:
        return status


def chain_down(*, workspace: str | Path | Workspace | None = None) -> ChainStatus:
    """Stop the workspace's chain (it saves its state first), even while commands use it."""
    d = _folder(Workspace.resolve(workspace))
    (d / keeper.PINNED).unlink(missing_ok=True)
    stopped = _stop_keeper(d)
    status = _status(d)
    status.stopped = stopped
    return status
