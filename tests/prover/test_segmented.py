"""One inference as linked segment proofs: proven, verified, and every way of tampering with
the chain refused — a segment's proof swapped, reordered, missing, from another inference (a
broken link), or with an edited instance."""

from __future__ import annotations

import json

import numpy as np
import pytest

import proofmint
from proofmint.prover.segmented import load_any

from ..conftest import run_cli


def _tampered(segmented, tmp_path, edit) -> dict:
    data = json.loads(open(segmented["bundle"]).read())
    edit(data)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    return proofmint.verify(path, workspace=segmented["ws"]).to_dict()


def test_a_segmented_proof_verifies_and_holds_the_models_outputs(segmented, zoo):
    b = load_any(segmented["bundle"])
    v = proofmint.verify(segmented["bundle"], workspace=segmented["ws"])
    assert v.valid, v.reason
    assert [k for k in v.checks if k.startswith("link")] == ["link 0->1", "link 1->2"]
    q = segmented["compile"].package.quantization
    assert b.max_abs_diff <= 0.01 * q["output_range"]
    assert len(b.segments) == 3 and b.link == "hashed"
    # a hashed link keeps the intermediate values out of the bundle: only their hashes are public
    assert len(b.segments[1].ezkl_proof["instances"][0]) == 2  # input hash + output hash
    assert b.timings["prove_wall"] > 0 and all("peak_rss_mb" in s.timings for s in b.segments)


def test_the_cli_proves_and_verifies_a_segmented_circuit(segmented, zoo, tmp_path):
    r = run_cli("prove", segmented["compile"].circuit_id[:12], "--input", zoo["lenet"].input,
                "--out", tmp_path / "p.json", "--workers", "3", "--workspace", segmented["ws"].root, "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["workers"]) == 3  # one process per segment
    v = run_cli("verify", tmp_path / "p.json", "--workspace", segmented["ws"].root)
    assert v.returncode == 0 and "valid proof" in v.stderr, v.stderr


@pytest.mark.parametrize("kind", ["swapped", "reordered", "missing", "foreign", "instance", "output", "input"])
def test_every_tampering_of_the_chain_is_refused(segmented, tmp_path, kind):
    other = json.loads(open(segmented["other"]).read())

    def edit(d):
        s = d["segments"]
        if kind == "swapped":  # two segments' proofs in each other's places
            s[1]["ezkl_proof"], s[2]["ezkl_proof"] = s[2]["ezkl_proof"], s[1]["ezkl_proof"]
        elif kind == "reordered":
            s[1], s[2] = s[2], s[1]
        elif kind == "missing":
            del s[1]
        elif kind == "foreign":  # a genuine proof of segment 1 from another inference: it verifies alone
            s[1] = other["segments"][1]
        elif kind == "instance":  # the link hash edited in the proof that carries it
            felt = s[1]["ezkl_proof"]["instances"][0][0]
            s[1]["ezkl_proof"]["instances"][0][0] = ("1" if felt[0] != "1" else "2") + felt[1:]
        elif kind == "output":
            d["outputs"][0][0] += 1.0
        elif kind == "input":
            d["input"][0] += 1.0

    res = _tampered(segmented, tmp_path, edit)
    assert not res["valid"], res
    expected = {"swapped": "does not verify", "reordered": "not circuit", "missing": "not circuit",
                "foreign": "link 0 -> 1 is broken", "instance": "does not verify", "output": "claimed output",
                "input": "claimed input"}[kind]
    assert expected in res["reason"], res


def test_segments_proven_by_more_workers_prove_the_same_statement(segmented, zoo, tmp_path):
    """Proofs are freshly blinded, but the instances are the statement: one worker or three."""
    one = proofmint.prove(segmented["compile"].circuit_id, input=zoo["lenet"].input, out=tmp_path / "one.json",
                          workers=1, workspace=segmented["ws"]).bundles[0]
    a, b = load_any(one), load_any(segmented["bundle"])
    assert a.instances == b.instances and np.allclose(a.outputs[0], b.outputs[0])


def test_segments_compiled_with_keys_on_demand_keep_none_and_prove_the_same_statement(segmented, zoo, tmp_path):
    """--keys on-demand (what auto picks where the keys together would not fit the disk): no
    segment keeps a pk.key, each proof makes its key first and deletes it after (one a killed
    prover left is cleared), and the chain is the same circuits proving the same statement.
    A later compile asking the other way switches the shared circuits, cached or not."""
    from proofmint.circuits.package import KEY_LOCK, load
    from proofmint.store import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    c = proofmint.compile(zoo["lenet"].onnx, segments=3, workspace=ws, keys="on-demand")
    assert c.package.segments == segmented["compile"].package.segments and c.package.pk_on_demand
    pkgs = [load(ws, cid) for cid in c.package.segments]
    assert all(p.pk_on_demand and p.pk_bytes > 0 and not p.pk.exists() for p in pkgs)
    stale = pkgs[1].path / ".tmp-pk-killed"  # a killed prover's: its lock held by no one
    stale.mkdir()
    (stale / KEY_LOCK).write_text("")
    (stale / "pk.key").write_bytes(b"\0" * 1024)
    out = proofmint.prove(c.circuit_id, input=zoo["lenet"].input, out=tmp_path / "p.json", workers=2,
                          workspace=ws).bundles[0]
    v = proofmint.verify(out, workspace=ws)
    assert v.valid, v.reason
    made = load_any(out)
    assert made.instances == load_any(segmented["bundle"]).instances
    assert all(s.timings["key"] > 0 for s in made.segments)
    assert not [p for pkg in pkgs for p in pkg.path.iterdir() if p.name.startswith(".tmp-") or p.name == "pk.key"]

    kept = proofmint.compile(zoo["lenet"].onnx, segments=3, workspace=ws, keys="kept")
    assert not kept.package.pk_on_demand
    assert all(not p.pk_on_demand and p.pk.stat().st_size == p.pk_bytes for p in kept.package.packages(ws))
    again = proofmint.compile(zoo["lenet"].onnx, segments=3, workspace=ws, keys="on-demand")
    assert again.cached and again.package.pk_on_demand
    assert all(p.pk_on_demand and not p.pk.exists() for p in again.package.packages(ws))


def test_a_key_being_made_is_not_cleared_and_a_dead_provers_is(tmp_path):
    import fcntl
    import os
    import time

    from proofmint.circuits.package import KEY_LOCK, clear_stale_keys

    live, dead, starting, old = (tmp_path / f".tmp-pk-{n}" for n in ("live", "dead", "starting", "old"))
    for d in (live, dead, starting, old):
        d.mkdir()
    (live / KEY_LOCK).write_text("")
    (dead / KEY_LOCK).write_text("")
    os.utime(old, (time.time() - 120, time.time() - 120))  # no lock, and made long ago
    with open(live / KEY_LOCK, "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        clear_stale_keys(tmp_path)
    assert live.exists() and starting.exists() and not dead.exists() and not old.exists()


def test_settings_list_their_range_checks_in_one_order(tmp_path):
    """ezkl wrote [[-1, 1], [0, 511]] in one compile and [[0, 511], [-1, 1]] in the next: the
    same model got two circuit ids."""
    import json

    from proofmint.circuits.candidate import _in_canonical_order

    texts = []
    for i, checks in enumerate(([[-1, 1], [0, 511]], [[0, 511], [-1, 1]])):
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps({"run_args": {"logrows": 12}, "required_range_checks": checks,
                                    "required_lookups": [{"Exp": {"scale": 128.0}}, "ReLU"][::1 - 2 * i]}))
        _in_canonical_order(path)
        texts.append(path.read_text())
    assert texts[0] == texts[1] and json.loads(texts[0])["run_args"] == {"logrows": 12}


def test_keys_are_made_on_demand_only_where_they_would_not_all_fit_the_disk(tmp_path):
    import shutil

    from proofmint.circuits.segmented import _keys_on_demand
    from proofmint.errors import InvalidModelError, UsageError

    free = shutil.disk_usage(tmp_path).free
    assert _keys_on_demand("auto", [1, 2], tmp_path) is False
    assert _keys_on_demand("auto", [free // 2 + 1] * 3, tmp_path) is True  # together over, one at a time fits
    assert _keys_on_demand("on-demand", [1, 2], tmp_path) is True
    with pytest.raises(InvalidModelError, match=r"the 3 segments' keys need about .* of disk; .* \(or --keys on-demand"):
        _keys_on_demand("kept", [free // 2 + 1] * 3, tmp_path)
    with pytest.raises(InvalidModelError, match=r"proofs that make their segment's key need about .* of disk"):
        _keys_on_demand("auto", [free + 2**30, 1], tmp_path)
    with pytest.raises(UsageError, match=r"--keys lazy — choose one of auto, kept, on-demand"):
        proofmint.compile(tmp_path / "none.onnx", keys="lazy")


def test_a_proof_whose_key_the_disk_cant_take_is_refused_and_workers_fall_to_what_it_holds(tmp_path):
    """Sized against this disk's real free space: a key made on demand that would not fit is
    refused in one line before any setup (nothing made), and workers that would each make one
    at once fall to as many as the disk holds."""
    import shutil
    from types import SimpleNamespace

    from proofmint.circuits.package import proving_key
    from proofmint.errors import WorkspaceError
    from proofmint.prover.segmented import workers_the_disk_holds

    free = shutil.disk_usage(tmp_path).free  # sizes far from it: other writers can't flip a case
    big = SimpleNamespace(pk_on_demand=True, pk_bytes=2 * free, path=tmp_path, circuit_id="ab" * 32)
    with pytest.raises(WorkspaceError, match=r"^circuit abababababababab's proving key is made for each proof and "
                                             r"needs .* GiB of disk; .* GiB free — free space there, or prove "
                                             r"with fewer --workers$"):
        with proving_key(big):
            pass
    assert list(tmp_path.iterdir()) == []
    most = [SimpleNamespace(pk_on_demand=True, pk_bytes=free * 6 // 10, path=tmp_path)] * 3
    assert workers_the_disk_holds(most, 3) == 1  # two such keys at once would not fit
    small = [SimpleNamespace(pk_on_demand=True, pk_bytes=1, path=tmp_path)] * 3
    assert workers_the_disk_holds(small, 3) == 3 and workers_the_disk_holds(small, 8) == 3  # one a segment
    assert workers_the_disk_holds([SimpleNamespace(pk_on_demand=False, pk_bytes=free, path=tmp_path)] * 3, 3) == 3


def test_one_circuit_compiled_with_keys_on_demand_proves_without_a_kept_key(zoo, tmp_path):
    from proofmint.circuits.package import load
    from proofmint.store import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    c = proofmint.compile(zoo["mlp"].onnx, workspace=ws, keys="on-demand")
    pkg = load(ws, c.circuit_id)
    assert pkg.pk_on_demand and not pkg.pk.exists()
    out = proofmint.prove(c.circuit_id, input=zoo["mlp"].input, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(out, workspace=ws).valid
    assert json.loads(open(out).read())["timings"]["key"] > 0
    assert not [p for p in pkg.path.iterdir() if p.name.startswith(".tmp-") or p.name == "pk.key"]
