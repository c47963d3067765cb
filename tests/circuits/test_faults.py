"""Kills mid-compile and concurrent compiles: nothing half-written is used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import proofmint
from proofmint.circuits import package
from proofmint.errors import NotFoundError
from proofmint.store import Workspace

from ..conftest import run_cli, spawn


def test_sigkill_during_setup_leaves_no_usable_partial_circuit(zoo, circuits, tmp_path):
    work = tmp_path / "ws"  # the development SRS is the machine's, shared
    circuits_dir = Workspace.resolve(work).circuits()
    r = run_cli("compile", zoo["mlp"].onnx, "-w", work, env={"PROOFMINT_FAILPOINT": "compile:keys-written"})
    assert r.returncode == 2 and "died" in r.stderr, r.stderr  # the compile worker was killed
    assert any(circuits_dir.glob("*/.tmp-*.key"))  # killed with the keys half-placed
    partial = [d for d in circuits_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert partial and not any((d / "package.json").exists() for d in partial)
    assert not any((d / "pk.key").exists() for d in partial)  # only .tmp-* debris
    with pytest.raises(NotFoundError):
        package.load(Workspace.resolve(work), partial[0].name)

    again = run_cli("compile", zoo["mlp"].onnx, "-w", work, "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    pkg = package.load(Workspace.resolve(work), result["circuit_id"])
    assert pkg.pk.stat().st_size == pkg.pk_bytes
    assert not list(Path(pkg.dir).glob(".tmp-*"))
    out = tmp_path / "p.json"
    assert run_cli("prove", pkg.circuit_id, "--input", zoo["mlp"].input, "--out", out, "-w", work).returncode == 0
    assert proofmint.verify(out, workspace=work).valid


def test_two_concurrent_compiles_end_with_one_valid_circuit(zoo, ws, tmp_path):
    work = tmp_path / "ws"  # the development SRS is the machine's, shared
    procs = [spawn("compile", zoo["generator"].onnx, "-w", work, "--json") for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    ids = {json.loads(o[0])["circuit_id"] for o in outs}
    assert len(ids) == 1
    dirs = [d for d in Workspace.resolve(work).circuits().iterdir() if not d.name.startswith(".")]
    assert len(dirs) == 1 and not list(dirs[0].glob(".tmp-*"))
    pkg = package.load(Workspace.resolve(work), ids.pop())
    assert pkg.pk.stat().st_size == pkg.pk_bytes
