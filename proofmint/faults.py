"""Named failpoints for crash tests: ``PROOFMINT_FAILPOINT=name`` SIGKILLs the process there.

A kill at a chosen point between two writes is the only way to test that the on-disk and
on-chain states agree after a crash; anywhere else the environment variable is unset and a
failpoint does nothing.
"""

from __future__ import annotations

import os
import signal

from . import config


def failpoint(name: str) -> None:
    if config.failpoint() == name:
        os.kill(os.getpid(), signal.SIGKILL)
