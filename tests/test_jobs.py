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



def test_a_child_whose_starter_died_during_its_start_up_exits():
    """A spawned worker arms PR_SET_PDEATHSIG a second or more after it was started; a starter
    killed in between has left it a reaper for a parent, and the signal would never come (a
    node killed 4 s after starting its pool left such a worker waiting on its pipe for ever).
    Each guard takes the starter's pid as the starter read it: given one that is not its
    parent now, the child exits instead of running on."""
    for guard in ("from proofmint.jobs import _die_with_parent as guard",
                  "from proofmint.verifier.chain.keeper import die_with_parent as guard"):
        gone = subprocess.run([sys.executable, "-c", f"{guard}; guard(1); print('ran on')"],
                              capture_output=True, text=True, timeout=120)
        assert gone.returncode != 0 and "ran on" not in gone.stdout, guard
        mine = subprocess.run([sys.executable, "-c", f"import os; {guard}; guard(os.getppid()); print('ran on')"],
                              capture_output=True, text=True, timeout=120)
        assert mine.returncode == 0 and "ran on" in mine.stdout, (guard, mine.stderr[-300:])

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
