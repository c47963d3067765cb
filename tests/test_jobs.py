"""Child processes (ezkl's) never outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def test_a_child_dies_with_its_parent_even_by_kill_minus_nine():
    parent = subprocess.Popen([sys.executable, "-c",
                               "import time, proofmint.jobs as j; j.run_in_child(time.sleep, 120, what='sleep')"])
    deadline = time.monotonic() + 60
    kids: list[str] = []
    while time.monotonic() < deadline and not any("spawn_main" in _cmd(k) for k in kids):
        time.sleep(0.2)
        kids = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
    worker = next(k for k in kids if "spawn_main" in _cmd(k))
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker), "the child outlived its killed parent"


def _cmd(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline").read()
    except OSError:
        return ""


def _alive(pid: str) -> bool:
    try:
        return "Zombie" not in open(f"/proc/{pid}/status").read()
    except OSError:
        return False
