"""The one input reader (proofmint/inputs.py), with no circuit: each bad input is refused with
one line naming where and why, and refused alike through every door — ``prove``'s file reader,
the node's API, calibration samples; the jobs client passes documents on for the node to judge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proofmint import inputs
from proofmint.circuits.samples import load_samples
from proofmint.errors import InputOutOfRangeError, InvalidInputError, NotFoundError
from proofmint.models.onnx_model import load_onnx
from proofmint.verifier.node.client import _read_inputs

from .conftest import write_tiny_model

SHAPE, SIZES = (1, 6), [6]  # the tiny model's input
GOOD = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return load_onnx(write_tiny_model(tmp_path_factory.mktemp("tiny")) / "model.onnx")


# (document, what the refusal says): the same for every reader
BAD_DOCUMENTS = {
    "a string": ([*GOOD[:5], "0.5"], "holds something other than numbers (a string at position 5)"),
    "the string nan": (["nan", *GOOD[1:]], "(a string at position 0)"),
    "a boolean": ([*GOOD[:5], True], "(a boolean at position 5)"),
    "false in an ezkl document": ({"input_data": [[*GOOD[:5], False]]}, "(a boolean at position 5)"),
    "null": ([*GOOD[:5], None], "(null at position 5)"),
    "a nested list": ([*GOOD[:5], [0.5]], "(a nested list at position 5)"),
    "an object": ([*GOOD[:5], {"v": 1}], "(an object at position 5)"),
    "a huge integer": ([*GOOD[:5], 10**400], "an integer too large for a float at position 5"),
    "NaN": ([math.nan, *GOOD[1:]], "non-finite value(s) (first at flat index 0: nan)"),
    "Infinity": ([*GOOD[:3], -math.inf, *GOOD[4:]], "non-finite value(s) (first at flat index 3: -inf)"),
    "too few": (GOOD[:5], "has 5 values, the circuit expects 6 (shape 1x6)"),
    "too many": ({"input_data": [GOOD + [0.0]]}, "has 7 values, the circuit expects 6 (shape 1x6)"),
    "no input_data": ({"data": [GOOD]}, 'has no "input_data" key'),
    "input_data not lists": ({"input_data": GOOD}, '"input_data" must hold exactly one list of numbers'),
    "two lists for one input": ({"input_data": [GOOD, GOOD]}, '"input_data" must hold exactly one list'),
    "a number": (0.5, "is not ezkl input JSON"),
}


@pytest.mark.parametrize("name", BAD_DOCUMENTS)
def test_a_bad_input_is_refused_alike_through_every_door(name, tiny_model, tmp_path):
    doc, why = BAD_DOCUMENTS[name]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))  # Python's json writes NaN and Infinity as prove's files may hold them
    refusals = {}
    for door, read in (("prove", lambda: inputs.read_inputs(path, SHAPE, SIZES)),
                       ("node", lambda: inputs.parse(json.loads(path.read_text()), SHAPE, SIZES, "input 0")),
                       ("samples", lambda: load_samples(path, tiny_model))):
        with pytest.raises(InvalidInputError) as refused:
            read()
        refusals[door] = str(refused.value)
    assert all(why in message and "\n" not in message for message in refusals.values()), refusals
    assert refusals["node"].startswith("input 0")
    assert _read_inputs(path) == [json.loads(path.read_text())]  # the client passes it on as it is


def test_good_inputs_in_every_format(tmp_path):
    files = {
        "doc.json": json.dumps({"input_data": [GOOD], "output_data": [[1.0]]}),  # ezkl's other keys are ignored
        "bare.json": json.dumps(GOOD),
        "ints.json": json.dumps([1, 2, 3, 4, 5, 6]),
        "two.jsonl": json.dumps(GOOD) + "\n\n" + json.dumps({"input_data": [GOOD[::-1]]}) + "\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "one.npy", np.array(GOOD).reshape(2, 3))  # one input's worth of values: one input
    np.save(tmp_path / "rows.npy", np.array([GOOD, GOOD, GOOD], dtype=np.float32))
    np.save(tmp_path / "int.npy", np.arange(6, dtype=np.int64))
    counts = {name: len(inputs.read_inputs(tmp_path / name, SHAPE)) for name in
              [*files, "one.npy", "rows.npy", "int.npy"]}
    assert counts == {"doc.json": 1, "bare.json": 1, "ints.json": 1, "two.jsonl": 2, "one.npy": 1, "rows.npy": 3,
                      "int.npy": 1}
    x = inputs.read_inputs(tmp_path / "two.jsonl", SHAPE)
    assert x[0].shape == SHAPE and x[1].ravel().tolist() == GOOD[::-1]
    # the client, which knows no shape, sends a 2-D array one row per input
    assert _read_inputs(tmp_path / "one.npy") == [GOOD[:3], GOOD[3:]]
    assert _read_inputs(tmp_path / "two.jsonl")[1] == {"input_data": [GOOD[::-1]]}


@pytest.mark.parametrize("content,error,why", [
    (b"", InvalidInputError, "is empty"),
    (b"   \n", InvalidInputError, "is empty"),
    (b"\xff\xfe\x00\x80" * 50, InvalidInputError, "is binary, not JSON"),
    (b'{"input_data": [[0.1, 0.2', InvalidInputError, "is not JSON (Expecting ',' delimiter at line 1)"),
])
def test_unreadable_files_are_refused(tmp_path, content, error, why):
    path = tmp_path / "in.json"
    path.write_bytes(content)
    for read in (lambda: inputs.read_inputs(path, SHAPE), lambda: _read_inputs(path)):
        with pytest.raises(error, match=".*" + why.replace("(", r"\(").replace(")", r"\)")):
            read()


def test_a_jsonl_with_a_bad_line_names_the_line_and_reads_nothing(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{oops\n" + json.dumps(GOOD) + "\n")
    for read in (lambda: inputs.read_inputs(path, SHAPE), lambda: _read_inputs(path)):
        with pytest.raises(InvalidInputError, match=f"{path} line 2 is not JSON"):
            read()
    path.write_text("\n \n")
    with pytest.raises(InvalidInputError, match="is empty"):
        inputs.read_inputs(path, SHAPE)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n" + json.dumps([*GOOD[:5], True]) + "\n")
    with pytest.raises(InvalidInputError, match=f"{bad} line 2 holds something other than numbers"):
        inputs.read_inputs(bad, SHAPE)


def test_npy_files_must_hold_numbers_and_be_whole(tmp_path):
    flags = tmp_path / "flags.npy"
    np.save(flags, np.ones(6, dtype=bool))  # True is not 1.0 here either
    text = tmp_path / "text.npy"
    np.save(text, np.array(["1"] * 6))
    for path, why in ((flags, "holds bool values"), (text, "holds <U1 values")):
        for read in (lambda: inputs.read_inputs(path, SHAPE), lambda: _read_inputs(path)):
            with pytest.raises(InvalidInputError, match=why):
                read()
    cut = tmp_path / "cut.npy"
    np.save(cut, np.zeros(64))
    cut.write_bytes(cut.read_bytes()[:100])
    with pytest.raises(InvalidInputError, match="is not a readable .npy file"):
        inputs.read_inputs(cut, SHAPE)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 4)))
    with pytest.raises(InvalidInputError, match="has 8 values, the circuit expects 6"):
        inputs.read_inputs(wrong, SHAPE)


def test_a_missing_file_is_not_found(tmp_path, tiny_model):
    with pytest.raises(NotFoundError, match="no input file at"):
        inputs.read_inputs(tmp_path / "nope.json", SHAPE)
    with pytest.raises(NotFoundError, match="no calibration file at"):
        load_samples(tmp_path / "nope.json", tiny_model)


def test_a_model_with_two_inputs_takes_one_list_per_input():
    sizes = [2, 3]
    x = inputs.values({"input_data": [[1, 2], [3, 4, 5]]}, sizes, "in")
    assert x.tolist() == [[1, 2, 3, 4, 5]]
    many = inputs.values({"input_data": [[1, 2, 1, 2], [3, 4, 5, 3, 4, 5]]}, sizes, "in", many=True)
    assert many.shape == (2, 5)
    for doc, why in (([1, 2, 3, 4, 5], "is not ezkl input JSON — expected .* with 2 lists, one per model input"),
                     ({"input_data": [[1, 2, 3, 4, 5]]}, "must hold 2 lists of numbers, one per model input"),
                     ({"input_data": [[1, 2], [3, 4]]}, "input 1 has 2 values, the model's input 1 takes 3"),
                     ({"input_data": [[1, 2], [3, "4", 5]]}, r"\(a string at position 1 of model input 1\)")):
        with pytest.raises(InvalidInputError, match=why):
            inputs.values(doc, sizes, "in")
    with pytest.raises(InvalidInputError, match=r"a different number of samples per input \(\[1, 2\]\)"):
        inputs.values({"input_data": [[1, 2], [3, 4, 5, 3, 4, 5]]}, sizes, "in", many=True)


def test_calibration_samples_are_read_back_to_back_or_one_per_line(tmp_path, tiny_model):
    doc = tmp_path / "calib.json"
    doc.write_text(json.dumps({"input_data": [GOOD * 3]}))
    lines = tmp_path / "calib.jsonl"
    lines.write_text("\n".join(json.dumps({"input_data": [GOOD * 2]}) for _ in range(2)))
    assert load_samples(doc, tiny_model).shape == (3, 6)
    assert load_samples(lines, tiny_model).shape == (4, 6)
    doc.write_text(json.dumps({"input_data": [GOOD * 2 + [1.0]]}))
    with pytest.raises(InvalidInputError, match="calibration sample 0 in .* has 13 values"):
        load_samples(doc, tiny_model)


def test_far_outside_the_calibrated_range_is_refused():
    inputs.check_range(np.array([0.0, 1.0, -0.9, 1.9]), [0.0, 1.0], "input 0")  # within a span either side
    with pytest.raises(InputOutOfRangeError, match=r"input 3 has a value 2.5 far outside the calibrated range \[0, 1\]"):
        inputs.check_range(np.array([0.5, 2.5]), [0.0, 1.0], "input 3")


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4))
json_any = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=8),
                                                           st.dictionaries(st.sampled_from(["input_data", "x"]), inner,
                                                                           max_size=2)), max_leaves=24)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(json_any)
@example([1, 2.5, -3, 0, 1e-3, 7])
@example({"input_data": [[1, 2, 3, 4, 5, 6]], "x": None})
def test_any_json_document_is_read_or_refused_in_one_line(doc):
    """Never another exception, never a boolean or a string read as a number."""
    try:
        x = inputs.parse(doc, SHAPE, SIZES, "input 0")
    except InvalidInputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("input 0")
        return
    lists = doc["input_data"] if isinstance(doc, dict) else [doc]
    values = [v for part in lists for v in part]
    assert x.shape == SHAPE and np.isfinite(x).all()
    assert all(type(v) in (int, float) for v in values) and x.ravel().tolist() == [float(v) for v in values]
