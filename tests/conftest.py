"""Shared, session-scoped artifacts: zoo exports, compiled circuits (keys made once), proofs, anvil."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proofmint.circuits.compile import compile as compile_model
from proofmint.models import export
from proofmint.prover import prove

ZOO_NAMES = ["mlp", "lenet", "transformer", "generator"]


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("zoo")
    return {name: export(name, root / name) for name in ZOO_NAMES}


@pytest.fixture(scope="session")
def circuits(zoo, ws) -> dict:
    return {name: compile_model(e.onnx, workspace=ws) for name, e in zoo.items()}


@pytest.fixture(scope="session")
def proofs(zoo, circuits, ws, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("proofs")
    return {name: prove(c.circuit_id, zoo[name].input, out / f"{name}.json", workspace=ws).bundles[0]
            for name, c in circuits.items()}


@pytest.fixture(scope="session")
def anvil(tmp_path_factory):
    from proofmint.verifier.chain import Anvil

    node = Anvil(tmp_path_factory.mktemp("chain") / "anvil-state.json").start()
    yield node
    node.stop()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `proofmint` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "proofmint", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=900)


def tree_digest(root: Path) -> str:
    """A hash of every file name and content under root (to prove nothing changed)."""
    h = hashlib.sha256()
    if root.exists():
        for p in sorted(root.rglob("*")):
            h.update(str(p.relative_to(root)).encode())
            if p.is_file():
                h.update(p.read_bytes() if p.stat().st_size < 1 << 20 else str(p.stat().st_size).encode())
    return h.hexdigest()
