"""The one input reader: ``prove``'s files, the node's API, the jobs client and calibration samples.

Four layers, each refusing what it can tell is wrong with a one-line
:class:`~proofmint.errors.InvalidInputError` that names where:

- :func:`documents`: a file's format — ezkl JSON (one input), JSONL (one per line), ``.npy``
  (one, or one per row) — into documents, before any value is judged;
- :func:`values`: a document's structure — ``{"input_data": [[...], ...]}`` with one list per
  graph input, or a bare list for a single-input model — and its values: JSON numbers only
  (``true`` is not 1.0, ``"1"`` is not 1, ``null`` is not NaN), each fitting a float;
- :func:`check_input`: the model's shape (the count of values) and finiteness;
- :func:`check_range`: the circuit's calibrated range.

It sits in the core because every stage reads inputs; ezkl's input JSON is written by
:func:`proofmint.ezkl_layer.input_json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputOutOfRangeError, InvalidInputError, NotFoundError

EXPECTED = '{"input_data": [[...]]}'
_KINDS = {bool: "a boolean", str: "a string", list: "a nested list", dict: "an object", type(None): "null"}


def documents(path: str | Path, size: int | None = None, what: str = "input file") -> list[tuple[str, Any]]:
    """Each input document in the file at ``path``, with where it came from: a JSON value, or
    a ``.npy`` row (a float array). ``size``: one input's value count, when known, so that an
    array of exactly that many values is one input whatever its shape; otherwise an array of
    two or more dimensions holds one input per row."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no {what} at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _npy(path, size)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is binary, not JSON — give ezkl JSON, .npy or JSONL") from None
    if not text.strip():
        raise InvalidInputError(f"{path} is empty — expected {EXPECTED}")
    if suffix != ".jsonl":
        try:
            return [(str(path), json.loads(text))]
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}) — expected "
                                    f"{EXPECTED}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            where = f"{path} line {n}"
            try:
                out.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{where} is not JSON ({exc.msg}) — fix or remove that line; "
                                        "nothing was proven") from None
    return out


def _npy(path: Path, size: int | None) -> list[tuple[str, np.ndarray]]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{path} is not a readable .npy file ({exc}) — save it with numpy.save") from None
    if arr.dtype.kind not in "fiu":  # booleans too: True is not 1.0
        raise InvalidInputError(f"{path} holds {arr.dtype} values — inputs must be numbers")
    arr = arr.astype(np.float64)
    rows = arr.ndim >= 2 and (size is None or (arr.size != size and arr.size == len(arr) * size))
    if rows:
        return [(f"{path} row {i}", a.ravel()) for i, a in enumerate(arr)]
    return [(str(path), arr.ravel())]  # a wrong count is refused with the counts by check_input


def values(doc: Any, sizes: Sequence[int], where: str, *, many: bool = False) -> np.ndarray:
    """The samples of one document as an array of shape (samples, sum(sizes)): ezkl's
    ``{"input_data": [...]}`` with one list per graph input (``many``: each holding one or
    more samples back to back; ezkl's other keys are ignored), a bare list of numbers for a
    single-input model, or a ``.npy`` row. A single input's count is left to
    :func:`check_input`, whose message names the shape."""
    sizes = list(sizes)
    if isinstance(doc, np.ndarray):
        return doc.reshape(1, -1)
    lists = _lists(doc, sizes, where)
    arrays = [_numbers(v, where, f" of model input {k}" if len(sizes) > 1 else "") for k, v in enumerate(lists)]
    if len(sizes) == 1:
        (arr,) = arrays
        if many and arr.size and arr.size % sizes[0] == 0:
            return arr.reshape(-1, sizes[0])
        return arr.reshape(1, -1)
    return _per_input(arrays, sizes, where, many)


def _lists(doc: Any, sizes: list[int], where: str) -> list:
    """A document's one list per graph input, refusing any other structure."""
    if isinstance(doc, list) and len(sizes) == 1:
        return [doc]
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{where} is not ezkl input JSON — expected {EXPECTED}"
                                + (f" with {len(sizes)} lists, one per model input" if len(sizes) > 1 else ""))
    if "input_data" not in doc:
        raise InvalidInputError(f'{where} has no "input_data" key — expected {EXPECTED}')
    lists = doc["input_data"]
    if not isinstance(lists, list) or len(lists) != len(sizes) or not all(isinstance(v, list) for v in lists):
        want = "exactly one list of numbers" if len(sizes) == 1 else \
            f"{len(sizes)} lists of numbers, one per model input ({', '.join(map(str, sizes))} values)"
        raise InvalidInputError(f'{where}: "input_data" must hold {want}')
    return lists


def _per_input(arrays: list[np.ndarray], sizes: list[int], where: str, many: bool) -> np.ndarray:
    """Several graph inputs' values as samples: each input's count checked, the same number of
    samples in each."""
    for k, (arr, n) in enumerate(zip(arrays, sizes)):
        if arr.size == 0 or arr.size % n or (not many and arr.size != n):
            raise InvalidInputError(f"{where}: input {k} has {arr.size} values, the model's input {k} "
                                    f"takes {n}" + (" (one or more samples back to back)" if many else ""))
    counts = {arr.size // n for arr, n in zip(arrays, sizes)}
    if len(counts) != 1:
        raise InvalidInputError(f"{where} holds a different number of samples per input "
                                f"({sorted(counts)}) — give every input the same number")
    return np.concatenate([arr.reshape(-1, n) for arr, n in zip(arrays, sizes)], axis=1)


def _numbers(seq: list, where: str, part: str) -> np.ndarray:
    """A list of JSON numbers as floats; anything else is refused by its kind and position
    (numpy would read ``true`` as 1.0 and ``"nan"`` as NaN)."""
    out = np.empty(len(seq), dtype=np.float64)
    for k, v in enumerate(seq):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            kind = _KINDS.get(type(v), f"a {type(v).__name__}")
            raise InvalidInputError(f"{where} holds something other than numbers ({kind} at position {k}{part}) "
                                    "— inputs must be numbers")
        try:
            out[k] = v
        except OverflowError:
            raise InvalidInputError(f"{where} holds an integer too large for a float at position {k}{part} — "
                                    "inputs must be finite numbers") from None
    return out


def check_input(shape: Sequence[int], x: np.ndarray, where: str) -> np.ndarray:
    """One input reshaped to the model's ``shape``, refusing a wrong count and non-finite values."""
    x = np.asarray(x, dtype=np.float64)
    expected = math.prod(shape)
    if x.size != expected:
        raise InvalidInputError(f"{where} has {x.size} values, the circuit expects {expected} "
                                f"(shape {'x'.join(map(str, shape))})")
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise InvalidInputError(f"{where} holds {int(bad.sum())} non-finite value(s) (first at flat index {i}: "
                                f"{x.ravel()[i]}) — inputs must be finite numbers")
    return x.reshape(tuple(shape))


def parse(doc: Any, shape: Sequence[int], sizes: Sequence[int] | None, where: str) -> np.ndarray:
    """One input document, checked and shaped: structure, number types, count, finiteness."""
    return check_input(shape, values(doc, sizes or [math.prod(shape)], where)[0], where)


def read_inputs(path: str | Path, shape: Sequence[int], sizes: Sequence[int] | None = None) -> list[np.ndarray]:
    """Every input in the file at ``path``, each checked and shaped to ``shape``: a bad one
    refuses the whole file. ``sizes``: each graph input's length, for a model with several
    (their values back to back)."""
    sizes = list(sizes or [math.prod(shape)])
    return [parse(doc, shape, sizes, where) for where, doc in documents(path, sum(sizes))]


def check_range(x: np.ndarray, input_range: Sequence[float], where: str) -> None:
    """Refuse inputs far outside the calibrated range: their lookups would overflow."""
    lo, hi = input_range
    span = max(hi - lo, 1e-9)
    allowed = (lo - span, hi + span)
    worst = float(x.max()) if abs(x.max() - hi) >= abs(x.min() - lo) else float(x.min())
    if x.min() < allowed[0] or x.max() > allowed[1]:
        raise InputOutOfRangeError(
            f"{where} has a value {worst:g} far outside the calibrated range [{lo:g}, {hi:g}] "
            f"(accepted: [{allowed[0]:g}, {allowed[1]:g}]); its witness would be unprovable — "
            "recompile with --calibration data that covers such inputs"
        )
