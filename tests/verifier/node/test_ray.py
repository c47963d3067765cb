"""The node on a local Ray: one backend for the node's life, as `prove --backend ray` uses it.
Ray is started once by the node (never per task) and stopped with it, the circuit's package
goes into Ray's object store once for all of its proofs, and the proofs come from Ray's workers."""

from __future__ import annotations

import shutil
import time

import proofmint
from proofmint.prover.backends import RAY_CACHE, RayBackend
from proofmint.store import Workspace
from proofmint.verifier.node.http import create_app
from proofmint.verifier.node.service import Node, running

from ...conftest import tiny_inputs
from .conftest import app_server
from .test_node import request

TOKEN = "ray-token-" + "x" * 24


def _prove(url: str, circuit: str, inputs: list[list[float]], timeout: float = 300) -> dict:
    status, _, r = request(f"{url}/api/jobs", {"circuit": circuit, "inputs": inputs}, TOKEN)
    assert status == 202, r
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, view = request(f"{url}/api/jobs/{r['job']}")
        if view["status"] in ("done", "failed", "partial"):
            assert view["status"] == "done", view
            return view
        time.sleep(0.2)
    raise AssertionError(f"job {r['job']} did not finish in {timeout} s: {view}")


def test_the_node_proves_on_a_local_ray_started_once_with_the_package_shipped_once(tiny_circuit, tmp_path):
    import ray

    assert not ray.is_initialized()
    circuit = tiny_circuit.circuit_id
    ws = Workspace.resolve(tmp_path / "ws")
    shutil.copytree(tiny_circuit.package.dir, ws.circuit_dir(circuit))
    for stale in (RAY_CACHE / circuit, RAY_CACHE / f"{circuit}.lock"):  # Ray's node-local copy: made afresh here
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    node = Node(ws, rpc_url=None, workers=2, threads=1, backend="ray")
    assert isinstance(node.prover, RayBackend) and not ray.is_initialized()  # nothing runs before start()
    with running(node), app_server(create_app(node, TOKEN)) as url:
        assert ray.is_initialized()
        session = ray.get_runtime_context().get_job_id()
        first = _prove(url, circuit, tiny_inputs(2, seed=31))
        shipped = dict(node.prover.shipped)
        second = _prove(url, circuit, tiny_inputs(1, seed=32))
        # the same Ray session proved both jobs, from the package put into the object store once
        assert ray.is_initialized() and ray.get_runtime_context().get_job_id() == session
        assert list(node.prover.shipped) == [circuit] and node.prover.shipped == shipped
        assert (RAY_CACHE / circuit / "complete").is_file()  # a Ray task wrote this node's copy
    assert not ray.is_initialized()  # the node stopped the Ray it started
    assert node.prover.shipped == {}
    proven = [ws.node_bundle(f"{view['id']}-{item['idx']}") for view in (first, second) for item in view["items"]]
    assert len(proven) == 3 and all(proofmint.verify(b, workspace=ws).valid for b in proven)
