"""Every user mistake: one-line error, exit code 2, and the workspace byte-for-byte unchanged."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from .conftest import run_cli, tree_digest


def _assert_clean_failure(result, ws, before, expect: str):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert expect in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert tree_digest(ws) == before


@pytest.fixture()
def clean_ws(circuits, ws):
    return ws, tree_digest(ws)


def _nonzero_model(path):
    node = helper.make_node("NonZero", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, None])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_not_onnx(clean_ws, tmp_path):
    ws, before = clean_ws
    p = tmp_path / "junk.onnx"
    p.write_bytes(bytes(range(256)) * 4)
    _assert_clean_failure(run_cli("compile", p, "-w", ws), ws, before, "not an ONNX model")


def test_truncated_onnx(clean_ws, zoo, tmp_path):
    ws, before = clean_ws
    data = open(zoo["lenet"].onnx, "rb").read()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    _assert_clean_failure(run_cli("compile", p, "-w", ws), ws, before, "ONNX")


def test_unsupported_operator_is_named(clean_ws, tmp_path):
    ws, before = clean_ws
    p = tmp_path / "nonzero.onnx"
    _nonzero_model(p)
    _assert_clean_failure(run_cli("compile", p, "-w", ws), ws, before, "NonZero")


@pytest.mark.parametrize("content,expect", [
    (json.dumps({"input_data": [[0.1] * 63]}), "has 63 values, the circuit expects 64 (shape 1x1x8x8)"),
    (json.dumps({"input_data": [[float("nan")] + [0.0] * 63]}).replace("NaN", "NaN"), "non-finite"),
    (json.dumps({"input_data": [["a"] * 64]}), "other than numbers"),
    ("", "is empty"),
    ('{"input_data": [[0.1, 0.2', "is not JSON"),
    (json.dumps({"input_data": [[500.0] * 64]}), "far outside the calibrated range"),
    (json.dumps({"data": [[0.1] * 64]}), 'no "input_data"'),
])
def test_bad_input_files(clean_ws, circuits, tmp_path, content, expect):
    ws, before = clean_ws
    p = tmp_path / "in.json"
    p.write_text(content)
    out = tmp_path / "p.json"
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", p, "--out", out, "-w", ws)
    _assert_clean_failure(r, ws, before, expect)
    assert not out.exists()


def test_binary_junk_and_truncated_npy(clean_ws, circuits, tmp_path):
    ws, before = clean_ws
    junk = tmp_path / "in.json"
    junk.write_bytes(b"\xff\xfe\x00\x80" * 50)
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", junk, "-w", ws)
    _assert_clean_failure(r, ws, before, "binary")
    npy = tmp_path / "in.npy"
    np.save(npy, np.zeros(64))
    npy.write_bytes(npy.read_bytes()[:100])
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", npy, "-w", ws)
    _assert_clean_failure(r, ws, before, ".npy")


def test_jsonl_with_a_bad_line_proves_nothing(clean_ws, circuits, tmp_path):
    ws, before = clean_ws
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps([0.1] * 64) + "\n{oops\n" + json.dumps([0.2] * 64) + "\n")
    r = run_cli("prove", circuits["lenet"].circuit_id, "--input", p, "--out", tmp_path / "p.json", "-w", ws)
    _assert_clean_failure(r, ws, before, "line 2 is not JSON")
    assert not list(tmp_path.glob("p*.json"))


def test_unknown_circuit_id(clean_ws, zoo):
    ws, before = clean_ws
    r = run_cli("prove", "deadbeefdeadbeef", "--input", zoo["lenet"].input, "-w", ws)
    _assert_clean_failure(r, ws, before, "no circuit deadbeefdeadbeef")


def test_missing_and_too_small_srs(clean_ws, zoo, circuits, tmp_path):
    ws, before = clean_ws
    r = run_cli("compile", zoo["mlp"].onnx, "--srs", tmp_path / "nope.srs", "-w", ws)
    _assert_clean_failure(r, ws, before, "can't read SRS")
    small = tmp_path / "small.srs"
    src = Path(circuits["mlp"].package.srs_path)
    small.write_bytes(src.read_bytes()[:4096])
    r = run_cli("compile", zoo["mlp"].onnx, "--srs", small, "-w", ws)
    _assert_clean_failure(r, ws, before, "truncated")


def test_srs_smaller_than_the_circuit_needs(clean_ws, zoo, tmp_path):
    import ezkl

    ws, before = clean_ws
    k4 = tmp_path / "k4.srs"
    ezkl.gen_srs(str(k4), 4)
    r = run_cli("compile", zoo["mlp"].onnx, "--srs", k4, "-w", ws)
    assert r.returncode == 2 and "needs logrows" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_workspace(zoo, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the workspace folder should be")
    r = run_cli("compile", zoo["mlp"].onnx, "-w", blocker / "ws")
    assert r.returncode == 2, r.stderr
    assert "can't write" in r.stderr and "--workspace" in r.stderr


def test_verify_of_a_non_bundle_is_a_usage_error(clean_ws, tmp_path):
    ws, before = clean_ws
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    _assert_clean_failure(run_cli("verify", p, "-w", ws), ws, before, "not a proofmint proof bundle")


@pytest.fixture()
def small_disk(tmp_path):
    """A real 256 KB filesystem: too small for any proving key."""
    import subprocess

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_full_workspace_is_a_clear_error_and_leaves_no_partial_file(zoo, small_disk):
    work = small_disk / "ws"
    r = run_cli("compile", zoo["mlp"].onnx, "-w", work)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "the disk is full" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not list(work.rglob(".tmp-*"))


def test_read_only_workspace_is_a_clear_error(zoo, small_disk):
    import subprocess

    work = small_disk / "ws"
    work.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    r = run_cli("compile", zoo["mlp"].onnx, "-w", work)
    assert r.returncode == 2, r.stderr
    assert "read-only" in r.stderr and "--workspace" in r.stderr and "Traceback" not in r.stderr
