"""Shared, session-scoped artifacts: zoo exports, compiled circuits (keys made once), proofs, anvil.

Two layers: a test that asks for one of the HEAVY fixtures below (anything that compiles zoo
models, proves, or starts anvil) is marked ``slow`` automatically; ``make test-fast`` runs
the rest (``-m "not slow"``) in well under two minutes, ``make test`` runs everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

import proofmint
from proofmint import config
from proofmint.store import Workspace
from proofmint.verifier.chain.keys import dev_keys

ZOO_NAMES = ["mlp", "lenet", "transformer", "generator"]  # compiled and proven by the fixtures
# mnist_mlp is exported in tests, measured in bench/; gpt (too big for one circuit) and
# generator28 and upsampler (a lineage child of generator) are exported by tests/models alone
ALL_ZOO = [*ZOO_NAMES, "mnist_mlp", "gpt", "generator28", "upsampler"]
HEAVY = {"zoo", "circuits", "proofs", "anvil", "hashed_mlp", "deployed", "tiny", "tiny_circuit",
         "stream", "sequential", "asset", "segmented"}
# The asset fixture's registration: owner / two data contributors (dev accounts 0, 8, 9), and
# the share of a derivative's royalty its parent's creator gets.
ASSET_SPLIT = [(Account.from_key(dev_keys()[i]).address, bps) for i, bps in ((0, 7_000), (8, 2_000), (9, 1_000))]
ASSET_PARENT_SHARE = 2_000


def pytest_addoption(parser):
    parser.addoption("--large", action="store_true",
                     help="run the large adversarial mode (>= 1,000 proof mutations, more examples)")


def pytest_configure(config):
    # The property tests size themselves from this at import, before fixtures exist.
    if config.getoption("--large"):
        os.environ["PROOFMINT_LARGE"] = "1"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def large(request) -> bool:
    return request.config.getoption("--large") or os.environ.get("PROOFMINT_LARGE") == "1"


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("zoo")
    return {name: proofmint.models_export(name, out=root / name) for name in ZOO_NAMES}


@pytest.fixture(scope="session")
def circuits(zoo, ws) -> dict:
    return {name: proofmint.compile(e.onnx, workspace=ws) for name, e in zoo.items()}


@pytest.fixture(scope="session")
def proofs(zoo, circuits, ws, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("proofs")
    return {name: proofmint.prove(c.circuit_id, input=zoo[name].input, out=out / f"{name}.json",
                                  workspace=ws).bundles[0]
            for name, c in circuits.items()}


@pytest.fixture(scope="session")
def anvil(tmp_path_factory):
    from proofmint.verifier.chain.anvil import Anvil

    with Anvil(tmp_path_factory.mktemp("chain") / "anvil-state.json") as node:
        yield node


@pytest.fixture(scope="session")
def hashed_mlp(zoo, ws, tmp_path_factory):
    """The wine MLP with a Poseidon-hashed input: one input instance instead of 13."""
    c = proofmint.compile(zoo["mlp"].onnx, input_visibility="hashed", workspace=ws)
    bundle = proofmint.prove(c.circuit_id, input=zoo["mlp"].input,
                             out=tmp_path_factory.mktemp("hashed") / "h.json", workspace=ws).bundles[0]
    return c, bundle


@pytest.fixture(scope="session")
def deployed(circuits, hashed_mlp, ws, anvil):
    out = {name: proofmint.deploy(circuits[name].circuit_id, rpc_url=anvil.url, workspace=ws)
           for name in ("mlp", "lenet")}
    out["mlp-hashed"] = proofmint.deploy(hashed_mlp[0].circuit_id, rpc_url=anvil.url, workspace=ws)
    return out


@pytest.fixture(scope="session")
def asset(zoo, circuits, proofs, anvil, tmp_path_factory):
    """A workspace of its own (``asset["ws"]``) on the session's anvil: the generator registered
    with a 70/20/10 royalty split and a 20 % parent share; its first token (the session's
    generator proof) and a derivative of it (a second proof), both minted by dev account 3."""
    root = tmp_path_factory.mktemp("asset")
    ws = Workspace.resolve(root / "ws")
    gen = circuits["generator"]
    shutil.copytree(Path(gen.package.dir), ws.circuit_dir(gen.circuit_id))  # keys made once per session
    calib = json.loads(open(zoo["generator"].calibration).read())["input_data"][0]
    second = root / "x2.json"
    second.write_text(json.dumps({"input_data": [calib[14 * 5:14 * 6]]}))
    p2 = proofmint.prove(gen.circuit_id, input=second, out=root / "p2.json", workspace=ws).bundles[0]
    dep = proofmint.deploy(gen.circuit_id, royalty_split=ASSET_SPLIT, training_data=zoo["generator"].training,
                           license=proofmint.License(parent_share_bps=ASSET_PARENT_SHARE), version="1.0.0",
                           rpc_url=anvil.url, workspace=ws)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(config.PRIVATE_KEY, dev_keys()[3])
        first = proofmint.mint(proofs["generator"], rpc_url=anvil.url, workspace=ws)
        child = proofmint.mint(p2, parent=first.token_id, rpc_url=anvil.url, workspace=ws)
    return {"ws": ws, "deploy": dep, "first": first, "child": child, "rpc": anvil.url}


@pytest.fixture(scope="session")
def segmented(zoo, tmp_path_factory):
    """The zoo LeNet as three linked segments (hashed cuts), in a workspace of its own, and two
    proofs of it: the session's input and another."""
    root = tmp_path_factory.mktemp("segmented")
    ws = Workspace.resolve(root / "ws")
    c = proofmint.compile(zoo["lenet"].onnx, segments=3, workspace=ws)
    calib = json.loads(open(zoo["lenet"].calibration).read())["input_data"][0]
    other = root / "x2.json"
    other.write_text(json.dumps({"input_data": [calib[64 * 7:64 * 8]]}))
    first = proofmint.prove(c.circuit_id, input=zoo["lenet"].input, out=root / "p.json", workers=2,
                            workspace=ws).bundles[0]
    second = proofmint.prove(c.circuit_id, input=other, out=root / "p2.json", workspace=ws).bundles[0]
    return {"ws": ws, "compile": c, "bundle": first, "other": second, "root": root}


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


def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    """The CLI in its own process group, so a kill takes its ezkl child with it."""
    return subprocess.Popen([sys.executable, "-m", "proofmint", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def wait_for(predicate, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        time.sleep(0.05)


def write_tiny_model(d: Path) -> Path:
    """Write the tiny model's model.onnx and a sample input.json into ``d``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w1, b1 = rng.normal(0, 0.5, (6, 8)).astype(np.float32), rng.normal(0, 0.1, 8).astype(np.float32)
    w2, b2 = rng.normal(0, 0.5, (8, 3)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), d / "model.onnx")
    (d / "input.json").write_text(json.dumps({"input_data": [tiny_inputs(1, seed=0)[0]]}))
    return d


def tiny_inputs(n: int, seed: int) -> list[list[float]]:
    """``n`` distinct inputs of the tiny model (each its own inference)."""
    rng = np.random.default_rng(1_000 + seed)
    return rng.uniform(-1, 1, (n, 6)).round(4).tolist()
