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


SCRIPT = """
import os, sys
from concurrent.futures import ThreadPoolExecutor
from proofmint.jobs import run_in_child

if __name__ == "__main__":
    spec, file = sys.modules["__main__"].__spec__, sys.modules["__main__"].__file__
    for _ in range(3):
        with ThreadPoolExecutor(6) as pool:
            pids = list(pool.map(lambda _: run_in_child(os.getpid, what="pid"), range(6)))
    main = sys.modules["__main__"]
    print(len(set(pids)), main.__spec__ is spec, getattr(main, "__file__", None) == file)
"""


def test_children_started_from_many_threads_at_once_leave_main_as_it_was(tmp_path):
    """A segmented proof starts its segments' children from one thread each. Hiding the
    caller's script while a child starts must not race: a thread that saved what another had
    hidden left ``__main__`` without its spec, and every later child re-ran the CLI."""
    (tmp_path / "many_children.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "many_children"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["6", "True", "True"]

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
