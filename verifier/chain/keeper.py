"""The workspace chain's keeper: one small process per workspace that owns its anvil.

:mod:`proofmint.verifier.chain.anvil` starts it (detached) for the first command that needs the
embedded chain; every later command, and the prover node, attach to the anvil it runs. The
keeper

- holds ``keeper.lock`` for its whole life (so "is a keeper running?" is a lock probe, not a
  guess from a pid that may have been reused), and records the anvil's pid, port and URL in
  ``chain.json``;
- starts anvil with ``PR_SET_PDEATHSIG``: anvil dies with its keeper, even on SIGKILL;
- saves the chain after every block, not on a timer: ``anvil_dumpState`` into a temp file,
  fsync, rename (a reader never sees half a state), then ``saved.json`` names the block it
  holds; anvil itself never writes the state file, so a kill of either leaves the last
  complete one;
- restarts an anvil that died under it from that state, on the same port;
- exits when no command uses the chain any more (each holds ``users.lock`` shared; the keeper
  probes it exclusively), unless ``chain up`` pinned it; on SIGTERM it saves and exits.

Standard library only, run as a script with ``python -I``: it starts in tens of milliseconds
and no import of the project can fail under it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import functools
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# anvil keeps old block states past its in-memory limit in ~/.foundry/anvil/tmp, removed only
# on a clean exit: every anvil a kill ends left its folder (15 GB over 29 test runs here). The
# chain's own state is the STATE dump; nothing here reads an old block's state.
ANVIL_FLAGS = ("--max-persisted-states", "0")
STATE = "anvil-state.json"  # the name anvil's own --state used: older workspaces load as they are
SAVED = "saved.json"
RECORD = "chain.json"
KEEPER_LOCK = "keeper.lock"
USERS_LOCK = "users.lock"
START_LOCK = "start.lock"
PINNED = "pinned"
LOG = "anvil.log"
TMP_PREFIX = ".tmp-"  # proofmint.store's: debris nothing reads

POLL_S = 0.05
IDLE_EXIT_S = 0.5  # no user for this long (one was killed, say): save and exit
START_TIMEOUT = 30.0
MAX_RESTARTS = 5  # anvil deaths the keeper restarts from, per keeper
PR_SET_PDEATHSIG = 1


def rpc(url: str, method: str, params: list | None = None, timeout: float = 10.0):
    """One JSON-RPC call; raises OSError when nothing answers, RuntimeError on an RPC error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer = json.loads(r.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def dump(url: str) -> bytes:
    """The chain's state as the JSON ``--load-state`` reads (``anvil_dumpState`` is gzip'd)."""
    return gzip.decompress(bytes.fromhex(rpc(url, "anvil_dumpState", timeout=60).removeprefix("0x")))


def die_with_parent(parent: int) -> None:
    """In a child (between fork and exec, or first thing in a spawned worker): the kernel
    SIGKILLs it when its parent dies. ``parent``: the starter's pid as the starter read it; a
    spawned worker reading it itself, a second or more into its start-up, can read a reaper's
    and live on as an orphan (seen: a node SIGKILLed 4 s after starting its pool)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != parent:
        os._exit(70)  # the parent died before the request took: never run as an orphan


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file beside ``path``, fsync, rename, fsync the folder: all of it or none of it."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def saved_block(folder: Path) -> int:
    """The block the state file holds (-1: none saved yet)."""
    try:
        return int(json.loads((folder / SAVED).read_text())["block"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def try_lock(path: Path, mode: int) -> int | None:
    """An fd holding ``flock(mode)`` on ``path``, or None if another holder conflicts."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def free_port(preferred: int = 0) -> int:
    """``preferred`` if it can be bound now (a restarted chain keeps its URL), else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free loopback port")


class Keeper:
    def __init__(self, folder: Path, anvil: str, chain_id: int, port: int, failpoint: str | None):
        self.folder, self.anvil, self.chain_id, self.failpoint = folder, anvil, chain_id, failpoint
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.saved = saved_block(folder)
        self.stopping = False
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_anvil(self) -> None:
        state = self.folder / STATE
        args = [self.anvil, "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id),
                "--silent", *ANVIL_FLAGS, *(["--load-state", str(state)] if state.exists() else [])]
        with open(self.folder / LOG, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=functools.partial(die_with_parent, os.getpid()))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"anvil exited at start (code {self.proc.returncode}) — see {self.folder / LOG}")
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                if int(rpc(self.url, "eth_chainId", timeout=2), 16) == self.chain_id:
                    break
            time.sleep(0.05)
        else:
            self.proc.kill()
            raise SystemExit(f"anvil did not answer on {self.url} within {START_TIMEOUT:.0f} s")
        self.saved = max(self.saved, int(rpc(self.url, "eth_blockNumber"), 16))
        write_atomic(self.folder / RECORD, json.dumps({
            "keeper_pid": os.getpid(), "anvil_pid": self.proc.pid, "port": self.port, "rpc_url": self.url,
            "chain_id": self.chain_id, "state_file": str(state), "restarts": self.restarts}, indent=2).encode())

    def save(self) -> None:
        """Dump the chain (it holds at least ``block``) and replace the state file with it."""
        block = int(rpc(self.url, "eth_blockNumber"), 16)
        if block == self.saved:
            return
        state = dump(self.url)
        if self.failpoint == "chain:state-written":  # crash tests: killed with the temp file written
            (self.folder / f"{TMP_PREFIX}{STATE}.{os.getpid()}").write_bytes(state)
            os.kill(os.getpid(), signal.SIGKILL)
        write_atomic(self.folder / STATE, state)
        write_atomic(self.folder / SAVED, json.dumps({"block": block, "at": time.time()}).encode())
        self.saved = block

    def unused(self) -> bool:
        if (self.folder / PINNED).exists():
            return False
        fd = try_lock(self.folder / USERS_LOCK, fcntl.LOCK_EX)
        if fd is None:
            return False
        os.close(fd)
        return True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for debris in self.folder.glob(f"{TMP_PREFIX}*"):  # a keeper killed mid-write; only keepers write here
            debris.unlink(missing_ok=True)
        self.start_anvil()
        idle_since = None
        while not self.stopping:
            if self.proc.poll() is not None:  # anvil died (killed): back from the last saved state
                self.restarts += 1
                if self.restarts > MAX_RESTARTS:
                    print(f"anvil died {self.restarts} times — the keeper gives up", file=sys.stderr)
                    break
                print(f"anvil exited (code {self.proc.returncode}); restarting from block {self.saved}",
                      file=sys.stderr, flush=True)
                self.start_anvil()
                continue
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # anvil going down: next round
                self.save()
            if self.unused():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= IDLE_EXIT_S:
                    break
            else:
                idle_since = None
            time.sleep(POLL_S)
        self.shutdown()
        return 0

    def _stop(self, *_):
        self.stopping = True

    def shutdown(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self.save()
            self.proc.kill()  # the state is saved: nothing is lost by SIGKILL
            self.proc.wait()
        (self.folder / RECORD).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--anvil", required=True)
    p.add_argument("--chain-id", type=int, required=True)
    p.add_argument("--port", type=int, default=0, help="preferred port (the last keeper's)")
    p.add_argument("--failpoint", default=None)
    a = p.parse_args(argv)
    deadline = time.monotonic() + 2  # a status probe may hold it for an instant
    while (lock := try_lock(a.folder / KEEPER_LOCK, fcntl.LOCK_EX)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if lock is None:
        print("another keeper runs for this chain", file=sys.stderr)
        return 3
    keeper = Keeper(a.folder, a.anvil, a.chain_id, free_port(a.port), a.failpoint)
    try:
        return keeper.run()
    except SystemExit as exc:  # anvil would not start: say why, leave no record behind
        keeper.shutdown()
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
