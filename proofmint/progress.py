"""Progress events from long work, decoupled from how they are shown.

Stage code calls ``step(...)``/``advance(...)``/``note(...)``; whoever runs it installs a
sink (the CLI's rich display on stderr, the job runner's pipe to the parent process, or
nothing for library users, where events are dropped).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

Event = dict
Sink = Callable[[Event], None]

_sink: Sink | None = None


def set_sink(sink: Sink | None) -> Sink | None:
    global _sink
    previous, _sink = _sink, sink
    return previous


@contextlib.contextmanager
def sink(s: Sink | None) -> Iterator[None]:
    previous = set_sink(s)
    try:
        yield
    finally:
        set_sink(previous)


def emit(event: Event) -> None:
    if _sink is not None:
        _sink(event)


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
