"""Progress events from long work, decoupled from how they are shown.

Stage code calls ``step(...)``/``advance(...)``/``note(...)``; whoever runs it installs a
sink (the CLI's rich display on stderr, the job runner's pipe to the parent process, or
nothing for library users, where events are dropped). The sink is a context variable, not a
global: two callers in one process (threads, a server) each see their own events; a worker
thread that should report to its caller runs in a copy of the caller's context
(:func:`in_context`).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Callable, Iterator, TypeVar

Event = dict
Sink = Callable[[Event], None]
T = TypeVar("T")

_sink: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("proofmint_progress_sink", default=None)


def set_sink(sink: Sink | None) -> None:
    """Install ``sink`` for the rest of this context (a child process's whole life)."""
    _sink.set(sink)


@contextlib.contextmanager
def sink(s: Sink | None) -> Iterator[None]:
    token = _sink.set(s)
    try:
        yield
    finally:
        _sink.reset(token)


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the current context, for a worker thread to report through
    the caller's sink."""
    ctx = contextvars.copy_context()
    return lambda *args, **kwargs: ctx.copy().run(fn, *args, **kwargs)  # one copy per call: threads



def emit(event: Event) -> None:
    current = _sink.get()
    if current is not None:
        current(event)


def note(message: str) -> None:
    """A one-line message for the user (warnings such as 'development SRS (not secure)')."""
    emit({"kind": "note", "message": message})


@contextlib.contextmanager
def step(name: str, total: int | None = None) -> Iterator[dict]:
    """A named step; yields a dict where the step may store its duration ('seconds')."""
    emit({"kind": "begin", "name": name, "total": total})
    started = time.perf_counter()
    info: dict = {}
    try:
        yield info
    finally:
        info["seconds"] = round(time.perf_counter() - started, 3)
        emit({"kind": "end", "name": name, "seconds": info["seconds"]})


def advance(name: str, n: int = 1) -> None:
    emit({"kind": "advance", "name": name, "n": n})
