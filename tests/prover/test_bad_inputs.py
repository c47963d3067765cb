"""Every user mistake: one-line error, exit code 2, and the workspace byte-for-byte unchanged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from proofmint import ezkl_layer

from ..conftest import run_cli, tree_digest

# A JSON document whose first value is the literal ``literal`` (NaN, Infinity, -Infinity: Python's
# json reads and writes them, though strict JSON has no such tokens), then 63 zeros.
_FINITE_TAIL = ", ".join(["0.0"] * 63)


def _with_first_value(literal: str) -> str:
    text = '{"input_data": [[' + literal + ", " + _FINITE_TAIL + "]]}"
    assert len(json.loads(text)["input_data"][0]) == 64
    return text


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


@pytest.fixture()
def empty_ws(tmp_path):
    """For refusals that need no circuit (``make test-fast``): a workspace not yet written to;
    refusing must not even create it."""
    return tmp_path / "ws", tree_digest(tmp_path / "ws")


def _nonzero_model(path):
    node = helper.make_node("NonZero", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, None])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_not_onnx(empty_ws, tmp_path):
    ws, before = empty_ws
    p = tmp_path / "junk.onnx"
    p.write_bytes(bytes(range(256)) * 4)
    _assert_clean_failure(run_cli("compile", p, "-w", ws), ws, before, "not an ONNX model")


def test_truncated_onnx(clean_ws, zoo, tmp_path):
    ws, before = clean_ws
    data = open(zoo["lenet"].onnx, "rb").read()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    _assert_clean_failure(run_cli("compile", p, "-w", ws), ws, before, "ONNX")


def test_unsupported_operator_is_named(empty_ws, tmp_path):
    ws, before = empty_ws
    p = tmp_path / "nonzero.onnx"
    _nonzero_model(p)
    _assert_clean_failure(run_cli("compile", p, "-w", ws), ws, before, "NonZero")


@pytest.mark.parametrize("content,expect", [
    (json.dumps({"input_data": [[0.1] * 63]}), "has 63 values, the circuit expects 64 (shape 1x1x8x8)"),
    # 64 values, one of them not finite: the bare tokens Python's json writes for nan and inf
    (_with_first_value("NaN"), "non-finite"),
    (json.dumps({"input_data": [[float("nan")] + [0.0] * 63]}), "non-finite"),  # json.dumps writes NaN
    (_with_first_value("Infinity"), "non-finite"),
    (_with_first_value("-Infinity"), "non-finite"),
    (_with_first_value("1e999"), "non-finite"),  # a finite literal that overflows to inf
    (_with_first_value('"nan"'), "(a string at position 0)"),  # numpy would read the string 'nan' as NaN
    (json.dumps({"input_data": [["a"] * 64]}), "other than numbers"),
    ("", "is empty"),
    ('{"input_data": [[0.1, 0.2', "is not JSON"),
    (json.dumps({"input_data": [[500.0] * 64]}), "far outside the calibrated range"),
    (json.dumps({"data": [[0.1] * 64]}), 'no "input_data"'),
])
def test_bad_input_files(clean_ws, circuits, tmp_path, content, expect):
    ws, before = clean_ws
    if expect == "non-finite":  # the case really holds a value that is not a finite number
        assert not np.isfinite(np.asarray(json.loads(content)["input_data"][0], dtype=np.float64)).all()
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
    src = Path(circuits["mlp"].package.srs)
    small.write_bytes(src.read_bytes()[:4096])
    r = run_cli("compile", zoo["mlp"].onnx, "--srs", small, "-w", ws)
    _assert_clean_failure(r, ws, before, "truncated")


def test_srs_smaller_than_the_circuit_needs(clean_ws, zoo, tmp_path):
    ws, before = clean_ws
    k4 = tmp_path / "k4.srs"
    ezkl_layer.gen_srs(k4, 4)
    r = run_cli("compile", zoo["mlp"].onnx, "--srs", k4, "-w", ws)
    assert r.returncode == 2 and "needs logrows" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_workspace(zoo, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the workspace folder should be")
    r = run_cli("compile", zoo["mlp"].onnx, "-w", blocker / "ws")
    assert r.returncode == 2, r.stderr
    assert "can't write" in r.stderr and "--workspace" in r.stderr


def test_verify_of_a_non_bundle_is_a_usage_error(empty_ws, tmp_path):
    ws, before = empty_ws
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    _assert_clean_failure(run_cli("verify", p, "-w", ws), ws, before, "not a proofmint proof bundle")


# A real 256 KB filesystem, too small for any proving key: a tmpfs. As root (CI) it is mounted
# directly; otherwise in a private user and mount namespace (``unshare --user --map-root-user
# --mount``), where an unprivileged user may mount a tmpfs. The compile runs on it inside the
# same script, which also lists the ``.tmp-*`` debris before the filesystem goes away.
_SMALL_DISK_SCRIPT = r"""
set -e
mount -t tmpfs -o size=256k tmpfs "$MNT"
trap 'umount -l "$MNT"' EXIT
if [ "$READ_ONLY" = 1 ]; then
    mkdir "$WORK"
    mount -o remount,ro,size=256k tmpfs "$MNT"
fi
set +e
"$PYTHON" -m proofmint compile "$ONNX" -w "$WORK" >"$RESULT.out" 2>"$RESULT.err"
echo $? >"$RESULT.rc"
find "$MNT" -name '.tmp-*' >"$RESULT.debris"
"""


def _compile_on_small_disk(onnx_path, tmp_path: Path, *, read_only: bool = False):
    """``proofmint compile`` into a workspace on a fresh 256 KB tmpfs (remounted read-only after
    the workspace folder is made, if ``read_only``). Returns the run and the debris it left."""
    mnt, result = tmp_path / "mnt", tmp_path / "result"
    mnt.mkdir()
    wrap = [] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    env = {**os.environ, "MNT": str(mnt), "WORK": str(mnt / "ws"), "ONNX": str(onnx_path),
           "PYTHON": sys.executable, "RESULT": str(result), "READ_ONLY": "1" if read_only else "0"}
    setup = subprocess.run([*wrap, "sh", "-c", _SMALL_DISK_SCRIPT], env=env, capture_output=True,
                           text=True, timeout=900)
    assert setup.returncode == 0 and Path(f"{result}.rc").is_file(), (
        "could not mount a 256 KB tmpfs for the workspace (needs root, or unprivileged user "
        f"namespaces for `unshare --user --map-root-user --mount`): {setup.stderr}")
    run = subprocess.CompletedProcess(["proofmint", "compile"], int(Path(f"{result}.rc").read_text()),
                                      Path(f"{result}.out").read_text(), Path(f"{result}.err").read_text())
    debris = [line for line in Path(f"{result}.debris").read_text().splitlines() if line.strip()]
    return run, debris


def test_full_workspace_is_a_clear_error_and_leaves_no_partial_file(zoo, tmp_path):
    r, debris = _compile_on_small_disk(zoo["mlp"].onnx, tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "the disk is full" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not debris, debris


def test_read_only_workspace_is_a_clear_error(zoo, tmp_path):
    if os.geteuid() == 0:  # root writes through permissions: make the filesystem itself read-only
        r, _ = _compile_on_small_disk(zoo["mlp"].onnx, tmp_path, read_only=True)
    else:  # without root a folder without write permission refuses every write in it
        work = tmp_path / "ws"
        work.mkdir()
        work.chmod(0o555)
        try:
            r = run_cli("compile", zoo["mlp"].onnx, "-w", work)
            assert not any(work.iterdir())  # nothing was written into it
        finally:
            work.chmod(0o755)
    assert r.returncode == 2, r.stderr
    assert "read-only" in r.stderr and "--workspace" in r.stderr and "Traceback" not in r.stderr
