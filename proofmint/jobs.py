"""Run long ezkl work in a child process.

ezkl's synchronous calls hold the GIL for their whole run, so progress, Ctrl-C and timeouts
can only work if ezkl runs elsewhere. The child reports progress events and then its
result over a pipe *before* it exits: ezkl sometimes aborts at interpreter exit after its
async calls, so the exit code alone is not trusted.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import resource
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Iterator

from . import config, progress
from .errors import ProofmintError, ProvingError, TimedOutError
from .store import workspace_error

_CTX = mp.get_context("spawn")
_HIDING = threading.Lock()


def unwind_on_sigterm() -> None:
    """Make `kill` (SIGTERM) unwind like Ctrl-C, so every ``run_in_child`` on the way out
    stops its child: without it a killed compile left ezkl calibrating for minutes."""
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


PR_SET_PDEATHSIG = 1
MIN_ADDRESS_SPACE = 4 * 2**30  # what Python, onnxruntime and ezkl map before any circuit


def _die_with_parent(parent: int) -> None:
    """Linux's PR_SET_PDEATHSIG: this process is killed when the process that started it dies,
    even by SIGKILL (a daemonic multiprocessing child otherwise outlives a killed parent for
    ever, waiting on its pipe: `kill -9` of a node mid-mint left them behind). ``parent``: the
    starter's pid as the starter read it; one read here, after a start-up of a second or more,
    may already be a reaper's."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup is all there is
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _child(conn, fn: Callable, args: tuple, kwargs: dict, env: dict, log: str, nests: bool,
           memory: int | None, parent: int) -> None:
    _die_with_parent(parent)
    os.environ.update(env)
    if memory:  # an allocation past it fails (ezkl aborts) instead of the machine swapping to a halt
        cap = max(memory, MIN_ADDRESS_SPACE)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if nests:  # stop its own children on the way out; a leaf dies at once, even inside ezkl
        unwind_on_sigterm()
    # ezkl prints fidelity tables and log lines (on stdout and stderr). stdout belongs to
    # --json and stderr to the progress display: both go to stderr with PROOFMINT_VERBOSE=1,
    # else to a log file whose last line the parent quotes if the child dies (a Rust panic).
    if config.verbose():
        os.dup2(2, 1)
    else:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    progress.set_sink(lambda event: conn.send(("event", event)))
    try:
        result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except ProofmintError as exc:
        conn.send(("error", exc))
    except OSError as exc:  # a write that failed (full or read-only disk): say so in one line
        conn.send(("error", workspace_error(exc.filename, exc)))
    except BaseException as exc:  # reported to the parent, which raises it as ProvingError
        conn.send(("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


@contextlib.contextmanager
def _caller_script_hidden() -> Iterator[None]:
    """The child needs proofmint's own functions only. A spawned child re-runs the caller's
    script (``__main__``) first, so a library user's script without an
    ``if __name__ == "__main__"`` guard would run again in every child and wait on the locks
    its parent holds: for as long as the child starts, the script has no path or name to find.
    One thread at a time: two threads starting children at once (a segmented proof's workers)
    would each save what the other had hidden, and leave ``__main__`` without its spec for good
    — every later child then re-ran the CLI itself ("start a new process before the current
    process has finished its bootstrapping phase")."""
    main = sys.modules.get("__main__")
    with _HIDING:
        saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
        try:
            main.__dict__.pop("__file__", None)
            if "__spec__" in saved:
                main.__spec__ = None
            yield
        finally:
            if main is not None:
                main.__dict__.update(saved)


def run_in_child(fn: Callable, *args: Any, env: dict | None = None,
                 timeout: float | None = None, what: str = "ezkl job", nests: bool = False,
                 memory: int | None = None, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` in a fresh process, relaying its progress events.

    Ctrl-C or ``timeout`` (seconds) terminates the child; files it was writing are left as
    ``.tmp-*`` debris that no reader picks up. ``nests``: the child runs children of its own
    (a compile's slow calibrations), so it is not daemonic and unwinds on SIGTERM to stop
    them; any other child is daemonic and dies at SIGTERM at once, even inside an ezkl call.
    ``memory`` (bytes) caps the child's address space, and its children's.
    """
    parent, child = _CTX.Pipe(duplex=False)
    fd, log = tempfile.mkstemp(prefix="proofmint-child-", suffix=".log")
    os.close(fd)
    proc = _CTX.Process(target=_child, args=(child, fn, args, kwargs, env or {}, log, nests, memory, os.getpid()),
                        daemon=not nests)
    deadline = None if timeout is None else time.monotonic() + timeout
    current = "starting"
    try:
        with _caller_script_hidden():
            proc.start()
        child.close()
        while True:
            if parent.poll(0.1):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    break
                if kind == "event":
                    if payload.get("kind") == "begin":
                        current = payload["name"]
                    progress.emit(payload)
                    continue
                if kind == "ok":
                    return payload
                if kind == "error":
                    raise payload
                raise ProvingError(f"{what} failed during '{current}': {payload}")
            if not proc.is_alive() and not parent.poll(0):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimedOutError(
                    f"{what} timed out after {timeout:.0f} s during '{current}' — raise the "
                    "timeout or use a smaller circuit"
                )
        last = _last_line(log)
        if memory and any(w in _tail(log) for w in ("memory allocation", "MemoryError", "bad_alloc")):
            raise ProvingError(
                f"{what} went past the {memory / 2**30:.1f} GiB of memory it may use, during '{current}' "
                "— run it where there is more (PROOFMINT_MEMORY sets what to plan for), or shrink the model")
        raise ProvingError(
            f"{what} died during '{current}' (exit code {proc.exitcode}"
            + (f"; its last words: {last}" if last else "") + ") — if that names no cause, likely "
            + (f"past the {memory / 2**30:.1f} GiB of memory it may use (PROOFMINT_MEMORY)" if memory else
               "out of memory: check free RAM or prove with fewer workers"))
    finally:
        try:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        finally:  # a second signal during the wait must not leave the child running
            if proc.is_alive():
                proc.kill()
            if proc.pid is not None:
                proc.join(1)
            parent.close()
        with contextlib.suppress(OSError):
            os.unlink(log)


def _tail(log: str) -> str:
    """The last 4 KiB a child wrote."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - 4096))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(log: str) -> str:
    lines = [ln.strip() for ln in _tail(log).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
