"""Property tests: malformed inputs always raise a ProofmintError (the CLI's one line, exit 2)
and leave the workspace byte-for-byte unchanged. ``--large`` runs many more examples.

Each property test counts the malformed inputs it really tried, asserts at its end that it
tried some (a strategy filtered to nothing, or a test whose every example was discarded, fails
instead of passing vacuously) and prints its own counts, whatever order the tests run in."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from proofmint.circuits import package
from proofmint.errors import ProofmintError, WorkspaceError
from proofmint.models import load_onnx
from proofmint.prover import prove
from proofmint.store import Workspace
from proofmint.verifier import verify

from ..conftest import tree_digest

EXAMPLES = int(os.environ.get("PROOFMINT_EXAMPLES", "0")) or None


def _settings(large_default: int, small_default: int):
    n = EXAMPLES or (large_default if os.environ.get("PROOFMINT_LARGE") == "1" else small_default)
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _report(request, record_property, tried: Counter, *kinds: str) -> None:
    """Print and record what this test tried, and fail if it tried nothing of a kind."""
    line = ", ".join(f"{k} {v}" for k, v in sorted(tried.items())) or "nothing"
    print(f"\nMALFORMED INPUTS tried by {request.node.name}: {line}")
    record_property("malformed_inputs_tried", dict(tried))
    for kind in kinds:
        assert tried[kind] > 0, f"{request.node.name} tried no {kind!r} example: {line}"


finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
json_any = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                           st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                        max_leaves=20)

bad_input_docs = st.one_of(
    st.lists(finite, max_size=130).filter(lambda v: len(v) != 64).map(lambda v: {"input_data": [v]}),
    st.lists(st.one_of(finite, st.text(max_size=3)), min_size=64, max_size=64)
      .filter(lambda v: any(isinstance(x, str) for x in v)).map(lambda v: {"input_data": [v]}),
    st.tuples(st.integers(0, 63), st.sampled_from([math.nan, math.inf, -math.inf]))
      .map(lambda t: {"input_data": [[0.5] * t[0] + [t[1]] + [0.5] * (63 - t[0])]}),
    st.tuples(st.integers(0, 63), st.floats(min_value=50, max_value=1e300))
      .map(lambda t: {"input_data": [[0.5] * t[0] + [t[1]] + [0.5] * (63 - t[0])]}),
    json_any,
)


def _expect_refusal(fn, ws: Path) -> None:
    before = tree_digest(ws)
    with pytest.raises(ProofmintError):
        fn()
    assert tree_digest(ws) == before


def _prove_lenet(circuits, ws, p: Path, out: Path):
    return lambda: prove(circuits["lenet"].circuit_id, input=p, out=out, workspace=ws)


def test_malformed_json_inputs_are_refused(circuits, ws, request, record_property):
    tried: Counter = Counter()

    @given(doc=bad_input_docs)
    @_settings(400, 40)
    def check(doc):
        text = json.dumps(doc)
        with tempfile.TemporaryDirectory() as d:
            p, out = Path(d) / "in.json", Path(d) / "p.json"
            p.write_text(text)
            _expect_refusal(_prove_lenet(circuits, ws, p, out), ws)
            assert not out.exists()
        tried["json input"] += 1

    check()
    _report(request, record_property, tried, "json input")


def test_binary_junk_and_empty_files_are_refused(circuits, ws, request, record_property):
    tried: Counter = Counter()

    @given(blob=st.binary(max_size=300))
    @_settings(200, 20)
    def check(blob):
        with tempfile.TemporaryDirectory() as d:
            for suffix in (".json", ".npy", ".jsonl"):
                p = Path(d) / f"in{suffix}"
                p.write_bytes(blob)
                _expect_refusal(_prove_lenet(circuits, ws, p, Path(d) / "o.json"), ws)
                tried["binary junk"] += 1

    check()
    _report(request, record_property, tried, "binary junk")


def test_truncated_npy_is_refused(circuits, ws, request, record_property):
    tried: Counter = Counter()

    @given(cut=st.integers(min_value=0, max_value=10_000))
    @_settings(150, 15)
    def check(cut):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "x.npy"
            np.save(p, np.full(64, 0.5))
            data = p.read_bytes()
            p.write_bytes(data[: cut % len(data)])
            _expect_refusal(_prove_lenet(circuits, ws, p, Path(d) / "o.json"), ws)
        tried["truncated npy"] += 1

    check()
    _report(request, record_property, tried, "truncated npy")


def test_jsonl_with_a_bad_line_proves_nothing(circuits, ws, request, record_property):
    tried: Counter = Counter()

    @given(position=st.integers(min_value=1, max_value=5),
           junk=st.sampled_from(["{", "[1,2", "nope", "[\"a\"]"]))
    @_settings(60, 8)
    def check(position, junk):
        good = json.dumps([0.5] * 64)
        lines = [good] * 6
        lines.insert(position, junk)
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "in.jsonl"
            p.write_text("\n".join(lines) + "\n")
            _expect_refusal(_prove_lenet(circuits, ws, p, Path(d) / "o.json"), ws)
            assert not list(Path(d).glob("o*.json"))
        tried["jsonl bad line"] += 1

    check()
    _report(request, record_property, tried, "jsonl bad line")


def test_truncated_or_corrupted_onnx_is_refused_or_still_a_real_model(zoo, request, record_property):
    tried: Counter = Counter()
    data = bytearray(Path(zoo["lenet"].onnx).read_bytes())

    @given(cut=st.integers(min_value=0, max_value=1 << 20), flip=st.integers(min_value=0, max_value=1 << 20))
    @_settings(150, 15)
    def check(cut, flip):
        with tempfile.TemporaryDirectory() as d:
            for label, blob in (("truncated", bytes(data[: cut % len(data)])),
                                ("corrupted", bytes(data[: flip % len(data)]) + b"\xff\x00junk")):
                p = Path(d) / "m.onnx"
                p.write_bytes(blob)
                try:
                    load_onnx(p)
                except ProofmintError:
                    tried[f"onnx {label}"] += 1
                    continue
                assume(False)  # parsed and passed onnx.checker: a real (if different) model

    check()
    _report(request, record_property, tried)
    assert tried["onnx truncated"] + tried["onnx corrupted"] > 0, "no damaged ONNX file was refused"


bundle_edits = st.tuples(
    # reference_outputs is onnxruntime's figure, not a proof claim: verify-asset re-runs the model
    st.sampled_from(["circuit_id", "input", "outputs", "model_id", "ezkl_proof", "visibility",
                     "format", "ezkl_proof.proof", "ezkl_proof.instances", "delete"]),
    json_any,
)


def test_hand_edited_bundles_are_refused_or_invalid(proofs, ws, request, record_property):
    tried: Counter = Counter()
    original = json.loads(Path(proofs["mlp"]).read_text())

    @given(edit=bundle_edits)
    @example(edit=("outputs", []))  # found by the large run: crashed verify before this fix
    @_settings(300, 30)
    def check(edit):
        field_name, value = edit
        data = json.loads(Path(proofs["mlp"]).read_text())
        if field_name == "delete":
            # batch_size and padding default to 1 and 0: deleting them at those values changes nothing
            required = sorted(set(data) - {"timings", "prover", "reference_outputs", "max_abs_diff",
                                           "argmax_agrees", "batch_size", "padding"})
            data.pop(required[len(json.dumps(value)) % len(required)])
        elif field_name.startswith("ezkl_proof."):
            data["ezkl_proof"][field_name.split(".")[1]] = value
        else:
            data[field_name] = value
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "b.json"
            p.write_text(json.dumps(data))
            before = tree_digest(ws)
            try:
                result = verify(p, workspace=ws)
                assert not result.valid or data == original
            except ProofmintError:
                pass
            assert tree_digest(ws) == before
        tried["edited bundle"] += 1

    check()
    assert json.loads(Path(proofs["mlp"]).read_text()) == original  # the real bundle was never touched
    _report(request, record_property, tried, "edited bundle")


def test_hand_edited_settings_and_keys_are_refused(circuits, ws, tmp_path, request, record_property):
    """A circuit whose settings, vk or pk changed after compile is never used."""
    tried: Counter = Counter()
    src = Path(circuits["mlp"].package.dir)
    for name, edit in (("settings.json", lambda b: b.replace(b'"logrows"', b'"logrows" ', 1)),
                       ("vk.key", lambda b: b[:-1] + bytes([b[-1] ^ 1])),
                       ("pk.key", lambda b: b[:-4096])):
        copy_ws = Workspace(tmp_path / name / "ws")
        dest = copy_ws.circuit_dir(src.name)
        dest.mkdir(parents=True)
        for f in src.iterdir():
            if f.is_file():
                shutil.copyfile(f, dest / f.name)
        target = dest / name
        edited = edit(target.read_bytes())
        assert edited != target.read_bytes()  # the edit really changed the file
        target.write_bytes(edited)
        with pytest.raises(WorkspaceError, match=name):
            package.load(copy_ws, src.name)
        tried["edited circuit file"] += 1
    _report(request, record_property, tried, "edited circuit file")
    assert tried["edited circuit file"] == 3
