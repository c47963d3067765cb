"""The wheel: built from this tree, it carries every module and data file, and installed into a
fresh virtual environment (no source tree on its path) it runs `proofmint doctor`, a compile,
prove and verify of a tiny model, and `proofmint serve` answering a job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from .conftest import tiny_inputs, write_tiny_model
from .verifier.node.conftest import free_port, get_json
from .verifier.node.test_node import request
from .test_structure import PACKAGES, ROOT

pytestmark = pytest.mark.slow  # compiles, proves and starts a chain

DATA = {"contracts": "proofmint/contracts", "toolchain": "proofmint/toolchain"}  # folders shipped as data


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return [f for f in out if (ROOT / f).is_file()]


def _expected(files: list[str]) -> set[str]:
    """Where each module and data file of the tree lands in the wheel."""
    package_of = {folder: pkg for pkg, folder in PACKAGES.items()}
    want = set()
    for f in files:
        top, _, rest = f.partition("/")
        if top in package_of and f.endswith(".py"):
            want.add(f"{package_of[top].replace('.', '/')}/{rest}")
        elif top in DATA and "/" not in rest:
            want.add(f"{DATA[top]}/{rest}")
        elif top == "verifier" and f.endswith(".schema.json"):
            want.add(f"proofmint/{f}")
    return want


def _run(*args, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: {r.stdout[-1500:]}{r.stderr[-1500:]}"
    return r


def test_the_wheel_carries_everything_and_runs_from_a_fresh_venv(tmp_path):
    started = time.monotonic()
    files = _tracked()
    src = tmp_path / "src"  # a copy: building never writes into the shared checkout
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFMINT_")}
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         cwd=src, env=env)
    _run(sys.executable, "-c", "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
         tmp_path / "dist", cwd=src, env=env)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _expected(files) - names
    assert not missing, sorted(missing)
    assert {"proofmint/verifier/node/service.py", "proofmint/verifier/chain/keeper.py",
            "proofmint/verifier/content/erc7007_metadata.schema.json", "proofmint/toolchain/ipfs.mjs"} <= names
    assert not any("node_modules" in n or n.startswith(("tests/", "toolchain/")) for n in names)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    in_sdist = {n.partition("/")[2] for n in tarfile.open(sdist).getnames()}
    assert {"verifier/node/service.py", "verifier/chain/keeper.py", "toolchain/ipfs.mjs", "contracts/ProvenanceToken.sol",
            "verifier/content/erc7007_metadata.schema.json", "pyproject.toml"} <= in_sdist

    # A fresh venv: the wheel installed into it, the project's dependencies seen through a .pth
    # (offline; that folder's own .pth files, the editable install's among them, are not run).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    py = venv / "bin" / "python"
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path,
                     env=env).stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel,
         cwd=tmp_path, env=env)
    where = _run(py, "-c", "import proofmint.verifier.node.service, proofmint.verifier.chain.keeper as k, proofmint.config as c; "
                           "print(proofmint.verifier.node.service.__file__, k.__file__, c.toolchain_dir())",
                 cwd=tmp_path, env=env).stdout.split()
    assert all(Path(w).is_relative_to(site) for w in where), where  # the wheel's, not the checkout's
    installed_toolchain = Path(where[2])
    assert (installed_toolchain / "package-lock.json").is_file()
    # `npm ci` in the installed toolchain folder, as a user would (here: the checkout's modules)
    (installed_toolchain / "node_modules").symlink_to(ROOT / "toolchain" / "node_modules")

    cli = venv / "bin" / "proofmint"
    doctor = _run(cli, "doctor", "--json", cwd=tmp_path, env=env)
    assert not [t for t in json.loads(doctor.stdout)["tools"] if t["problem"]], doctor.stdout
    model = write_tiny_model(tmp_path / "tiny")
    ws = tmp_path / "ws"
    compiled = json.loads(_run(cli, "compile", model / "model.onnx", "-w", ws, "--json", cwd=tmp_path,
                               env=env).stdout)
    circuit = compiled["circuit_id"]
    _run(cli, "prove", circuit, "--input", model / "input.json", "--out", tmp_path / "p.json", "-w", ws,
         cwd=tmp_path, env=env)
    verdict = json.loads(_run(cli, "verify", tmp_path / "p.json", "-w", ws, "--json", cwd=tmp_path, env=env).stdout)
    assert verdict["valid"], verdict

    port = free_port()
    node = subprocess.Popen([cli, "serve", "--port", str(port), "-w", ws], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"), start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert node.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                get_json(f"{url}/api/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        token = (ws / "node" / "token").read_text().strip()
        status, _, job = request(f"{url}/api/jobs", {"circuit": circuit, "inputs": tiny_inputs(1, seed=42)}, token)
        assert status == 202, job
        while (view := get_json(f"{url}/api/jobs/{job['job']}"))["status"] not in ("done", "failed", "partial"):
            assert time.monotonic() < deadline + 120, view
            time.sleep(0.3)
        assert view["status"] == "done", view
        keeper_cmd = Path(f"/proc/{json.loads((ws / 'anvil' / 'chain.json').read_text())['keeper_pid']}/cmdline")
        assert str(site).encode() in keeper_cmd.read_bytes()  # the chain's keeper is the wheel's too
    finally:
        node.terminate()
        node.wait(60)
    print(f"\nwheel test: {wheel.name}, {len(names)} files; built, installed and run in "
          f"{time.monotonic() - started:.0f} s")
