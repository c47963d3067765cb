"""Reading inputs to prove: ezkl JSON, ``.npy`` or JSONL (one input per line).

Every input is checked before any proving starts, so a bad file costs no proving time and
writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer
from proofmint.errors import InputOutOfRangeError, InvalidInputError, NotFoundError
from proofmint.models.onnx_model import check_input


def _values(doc, where: str, sizes: list[int]) -> np.ndarray:
    """One input: ``{"input_data": [[...], ...]}`` (one list per graph input) or bare numbers."""
    return ezkl_layer.parse_input(doc, sizes, where)[0]


def read_inputs(path: str | Path, input_shape: tuple[int, ...] | list[int],
                sizes: list[int] | None = None) -> list[np.ndarray]:
    """All inputs in ``path``, each reshaped to ``input_shape`` and checked for count and NaN.
    ``sizes``: each graph input's length, for a model with several (their values back to back)."""
    path = Path(path)
    shape = tuple(input_shape)
    size = int(np.prod(shape))
    sizes = sizes or [size]
    if not path.is_file():
        raise NotFoundError(f"no input file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidInputError(f"{path} is not a readable .npy file ({exc}) — save it with "
                                    "numpy.save") from None
        if arr.dtype.kind not in "fiub":
            raise InvalidInputError(f"{path} holds {arr.dtype} values — inputs must be numbers")
        if arr.size == size:
            return [check_input(shape, arr, str(path))]
        if arr.ndim >= 2 and arr.size == arr.shape[0] * size:
            return [check_input(shape, a, f"{path} row {i}") for i, a in enumerate(arr)]
        return [check_input(shape, arr, str(path))]  # raises with the counts

    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is binary, not JSON — give ezkl JSON, .npy or JSONL") from None
    if not text.strip():
        raise InvalidInputError(f"{path} is empty — expected {{\"input_data\": [[...]]}}")
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{where} is not JSON ({exc.msg}) — fix or remove that "
                                        "line; nothing was proven") from None
            out.append(check_input(shape, _values(obj, where, sizes), where))
        if not out:
            raise InvalidInputError(f"{path} has no inputs")
        return out
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}) — expected "
                                '{"input_data": [[...]]}') from None
    return [check_input(shape, _values(obj, str(path), sizes), str(path))]


def check_range(x: np.ndarray, input_range: list[float], where: str) -> None:
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
