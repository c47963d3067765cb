"""Parallel and Ray proving give the same verified results as sequential; failures don't stop a stream."""

import json
import os

import numpy as np
import pytest

import proofmint
from proofmint.errors import UsageError
from proofmint.prover import load_bundle
from proofmint.prover.backends import threads_per_worker

from ..conftest import run_cli


@pytest.fixture(scope="session")
def stream(zoo, tmp_path_factory):
    calib = np.array(json.loads(open(zoo["lenet"].calibration).read())["input_data"][0]).reshape(-1, 64)
    p = tmp_path_factory.mktemp("stream") / "stream.jsonl"
    p.write_text("\n".join(json.dumps(x.tolist()) for x in calib[:4]) + "\n")
    return p


@pytest.fixture(scope="session")
def sequential(circuits, stream, ws, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "p.json"
    return proofmint.prove(circuits["lenet"].circuit_id, input=stream, out=out, workspace=ws)


def _same_statements(a: list[str], b: list[str]) -> None:
    assert [p.rsplit("/", 1)[1] for p in a] == [p.rsplit("/", 1)[1] for p in b]
    for x, y in zip(a, b):
        bx, by = load_bundle(x), load_bundle(y)
        assert bx.ezkl_proof["instances"] == by.ezkl_proof["instances"]
        assert bx.outputs == by.outputs and bx.input == by.input


def test_parallel_workers_match_sequential(circuits, stream, sequential, ws, tmp_path):
    par = proofmint.prove(circuits["lenet"].circuit_id, input=stream, out=tmp_path / "p.json", workspace=ws,
                          workers=2)
    assert len(par.bundles) == 4 and not par.failures
    # the cores are divided among the workers (workers x threads fits the machine), at least 1 each
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert threads_per_worker(2) == expected
    assert [w.threads for w in par.workers] == [expected, expected]
    assert [w.worker for w in par.workers] == [0, 1] and [w.inputs for w in par.workers] == [2, 2]
    assert all(w.peak_rss_mb > 0 for w in par.workers)
    assert par.to_dict()["workers"][0]["threads"] == expected  # the CLI's --json shape is kept
    _same_statements(sequential.bundles, par.bundles)
    assert all(proofmint.verify(b, workspace=ws).valid for b in par.bundles)


def test_ray_backend_matches_sequential(circuits, stream, sequential, ws, tmp_path):
    ray = proofmint.prove(circuits["lenet"].circuit_id, input=stream, out=tmp_path / "p.json", workspace=ws,
                          backend="ray")
    assert ray.backend == "ray" and len(ray.bundles) == 4 and not ray.failures
    _same_statements(sequential.bundles, ray.bundles)
    assert all(proofmint.verify(b, workspace=ws).valid for b in ray.bundles)


def test_an_unprovable_input_in_a_stream_does_not_stop_the_others(circuits, zoo, ws, tmp_path):
    x = json.loads(open(zoo["lenet"].input).read())["input_data"][0]
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(json.dumps(v) for v in (x, [900.0] * 64, x[::-1])) + "\n")
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", p, "--out", tmp_path / "p.json",
                "--workers", "2", "-w", ws, "--json")
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)
    assert [b.rsplit("/", 1)[1] for b in res["bundles"]] == ["p-0000.json", "p-0002.json"]
    assert [f["index"] for f in res["failures"]] == [1]
    assert "far outside the calibrated range" in res["failures"][0]["error"]
    assert not (tmp_path / "p-0001.json").exists()
    assert all(proofmint.verify(b, workspace=ws).valid for b in res["bundles"])


def test_conflicting_backend_options_are_refused(circuits, zoo, ws):
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", zoo["lenet"].input, "--address",
                "ray://x:1", "-w", ws)
    assert r.returncode == 2 and "--backend ray" in r.stderr


def test_gpu_device_is_refused_by_a_cpu_only_ezkl(tmp_path):
    """The pinned PyPI ezkl 23.0.5 has no ICICLE: --device gpu says so before any work."""
    with pytest.raises(UsageError, match="has no ICICLE code"):
        proofmint.prove("00000000", input=tmp_path / "in.json", workspace=tmp_path / "ws", device="gpu")
    assert not (tmp_path / "ws").exists()
    with pytest.raises(UsageError, match="choose cpu or gpu"):
        proofmint.prove("00000000", input=tmp_path / "in.json", workspace=tmp_path / "ws", device="tpu")
    assert not (tmp_path / "ws").exists()


def test_threads_divide_the_cores_among_the_workers():
    cores = os.cpu_count() or 1
    for workers in (1, 2, 3, cores, cores + 1):
        assert threads_per_worker(workers) == max(1, cores // workers)
    assert threads_per_worker(2, threads=3) == 3  # --threads wins
