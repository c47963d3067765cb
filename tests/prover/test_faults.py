"""A kill mid-proof: no bundle is written."""

from __future__ import annotations



import proofmint

from ..conftest import run_cli


def test_sigkill_during_proving_writes_no_bundle(zoo, circuits, ws, tmp_path):
    out = tmp_path / "p.json"
    before = set(ws.rglob("*"))
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", zoo["lenet"].input, "--out", out,
                "-w", ws, env={"PROOFMINT_FAILPOINT": "prove:proof-written"})
    assert r.returncode == 2 and "died" in r.stderr, r.stderr  # the prover was killed after ezkl.prove
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    assert set(ws.rglob("*")) == before  # proving writes nothing into the workspace
    again = run_cli("prove", circuits["lenet"].circuit_id, "--input", zoo["lenet"].input, "--out", out, "-w", ws)
    assert again.returncode == 0 and proofmint.verify(out, workspace=ws).valid
