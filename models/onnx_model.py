"""Loading, checking and running ONNX models (zoo exports and user files alike).

The float reference (expected outputs, fidelity checks) is onnxruntime; when onnxruntime
refuses a graph that ezkl's tract runs (EZKL's decision_tree and random_forest examples:
an int8 MatMul its type checker rejects), it is onnx's own pure-Python
``ReferenceEvaluator``. Which one ran is recorded (``OnnxModel.reference``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from proofmint.errors import InvalidInputError, InvalidModelError, NotFoundError, UsageError
from proofmint.store import sha256_bytes

MAX_OPSET = 18  # tract, inside ezkl, is tested with opsets 9-18


@dataclass(frozen=True)
class OnnxModel:
    """A checked ONNX model with static input shapes (a symbolic leading batch dim taken as 1).

    A graph with several inputs is proven as one flat input: their values back to back in
    graph order (``input_size`` in all), which is how ezkl orders their instances too; ezkl's
    JSON holds one list per input (:meth:`split`).
    """

    path: Path
    data: bytes
    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    opset: int
    op_types: tuple[str, ...]
    batch_axis: str | None = None  # name of a symbolic leading input dim: batch proofs set it
    input_dtypes: tuple[str, ...] = ("float32",)
    _engine: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def input_sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.input_shapes]

    @property
    def input_size(self) -> int:
        return sum(self.input_sizes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The one input's shape, or for several inputs the flat length of all of them."""
        return self.input_shapes[0] if len(self.input_shapes) == 1 else (self.input_size,)

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """One flat input vector as the graph's inputs, each in its shape and type."""
        flat = np.asarray(x).ravel()
        out, start = [], 0
        for shape, size, dtype in zip(self.input_shapes, self.input_sizes, self.input_dtypes):
            out.append(np.asarray(flat[start:start + size], dtype=np.dtype(dtype)).reshape(shape))
            start += size
        return out

    @property
    def model_id(self) -> str:
        return sha256_bytes(self.data)

    @property
    def reference(self) -> str:
        """Which float engine runs the model: "onnxruntime" or "onnx.reference"."""
        self._runner  # noqa: B018 - picks the engine
        return self._engine["name"]

    def __getstate__(self) -> dict:
        """Without the loaded engine (a session and a closure): a model goes to child processes."""
        return {k: v for k, v in self.__dict__.items() if k != "_runner"}

    @cached_property
    def _runner(self):
        try:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.log_severity_level = 4  # its refusals are handled below, not printed
            session = ort.InferenceSession(self.data, opts, providers=["CPUExecutionProvider"])
            session.run(None, self._feed(np.zeros(self.input_size)))
            self._engine["name"] = "onnxruntime"
            return lambda feed: session.run(None, feed)
        except Exception as exc:  # onnxruntime refuses graphs tract accepts; fall back
            self._engine["onnxruntime_error"] = str(exc).splitlines()[0][:300]
        import onnx
        from onnx.reference import ReferenceEvaluator

        try:
            evaluator = ReferenceEvaluator(onnx.load_model_from_string(self.data))
            evaluator.run(None, self._feed(np.zeros(self.input_size)))
        except Exception as exc:
            raise InvalidModelError(
                f"{self.path} can't be run by onnxruntime ({self._engine['onnxruntime_error']}) "
                f"nor by onnx.reference ({str(exc).splitlines()[0][:200]}) — check the model "
                "with onnx.checker.check_model(model, full_check=True)"
            ) from None
        self._engine["name"] = "onnx.reference"
        return lambda feed: evaluator.run(None, feed)

    def _feed(self, x: np.ndarray) -> dict:
        return dict(zip(self.input_names, self.split(x)))

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The float reference outputs for one input."""
        try:
            outs = self._runner(self._feed(x))
        except InvalidModelError:
            raise
        except Exception as exc:
            raise InvalidModelError(f"{self.reference} failed to run {self.path.name}: "
                                    f"{str(exc).splitlines()[0][:300]}") from None
        return [np.asarray(o, dtype=np.float64) for o in outs]


def _shape(value_info, what: str, strict: bool) -> tuple[int, ...] | None:
    """Static dims, a symbolic leading (batch) dim taken as 1. A symbolic dim after it is an
    error for an input (``strict``) and None for an output, whose shape a reference run gives."""
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(d.dim_value)
        elif not dims:
            dims.append(1)  # a symbolic batch dimension is proven with batch 1
        elif strict:
            raise InvalidModelError(
                f"{what} '{value_info.name}' has a symbolic dimension '{d.dim_param}' "
                "after the batch axis — export the model with static input shapes"
            )
        else:
            return None
    return tuple(dims)


_NUMPY_TYPES = {1: "float32", 11: "float64", 10: "float16", 6: "int32", 7: "int64", 3: "int8",
                2: "uint8", 9: "bool"}


def model_file(path: Path) -> Path:
    """The ONNX file ``path`` names: the file itself, or in a folder (how a model is handed
    over: ``model.onnx`` and an ``input.json``; EZKL's examples call it ``network.onnx``) its
    ``model.onnx``, else its only ``.onnx`` file."""
    if path.is_dir():
        if (path / "model.onnx").is_file():
            return path / "model.onnx"
        found = sorted(p for p in path.glob("*.onnx") if p.is_file())
        if len(found) == 1:
            return found[0]
        if not found:
            raise NotFoundError(f"no .onnx file in the folder {path} — pass the model file itself, "
                                "or put it there as model.onnx")
        raise UsageError(f"the folder {path} holds {len(found)} ONNX files "
                         f"({', '.join(p.name for p in found[:4])}{', ...' if len(found) > 4 else ''}) "
                         "— pass the one to compile")
    if not path.is_file():
        raise NotFoundError(f"no model file at {path}")
    return path


def load_onnx(path: str | Path) -> OnnxModel:
    """Read and validate an ONNX file; raise InvalidModelError with the reason otherwise."""
    import onnx

    path = model_file(Path(path))
    data = path.read_bytes()
    if not data:
        raise InvalidModelError(f"{path} is empty — expected an ONNX model")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError / RuntimeWarning subclasses
        raise InvalidModelError(
            f"{path} is not an ONNX model ({type(exc).__name__}) — export one with "
            "torch.onnx.export(..., opset_version=18) or `proofmint models export`"
        ) from None
    if not proto.graph.node:
        raise InvalidModelError(f"{path} is not an ONNX model (no graph nodes) — check the file")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidModelError(f"{path} fails the ONNX checker: {first}") from None

    # An opset outside ezkl's tested 9-18 is converted by compile's rewrite pass.
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    for node in proto.graph.node:
        if node.op_type in UNSUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            raise InvalidModelError(
                f"{path.name} uses {op} (node '{node.name or node.output[0]}'), which no circuit can "
                f"prove and proofmint can't rewrite — {ALTERNATIVES.get(node.op_type, 'export the model without it (standard ONNX ops only)')}"
            )
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not inputs:
        raise InvalidModelError(f"{path} has no graph inputs — nothing to prove about an input")
    for i in inputs:
        if i.type.tensor_type.elem_type not in _NUMPY_TYPES:
            raise InvalidModelError(f"{path}: input '{i.name}' has ONNX element type "
                                    f"{i.type.tensor_type.elem_type}, which has no numeric JSON form "
                                    "— use a float or integer input")
    outputs = [_shape(o, "output", strict=False) for o in proto.graph.output]
    model = OnnxModel(
        path=path,
        data=data,
        input_names=tuple(i.name for i in inputs),
        input_shapes=tuple(_shape(i, "input", strict=True) for i in inputs),
        output_shapes=tuple(o or () for o in outputs),
        opset=opset,
        op_types=tuple(sorted({n.op_type for n in proto.graph.node})),
        batch_axis=_batch_axis(inputs[0]),
        input_dtypes=tuple(_NUMPY_TYPES[i.type.tensor_type.elem_type] for i in inputs),
    )
    if any(o is None for o in outputs):
        # A symbolic output dim (xgboost's class axis): one reference run says what it is.
        shapes = tuple(tuple(o.shape) or (1,) for o in model.run(np.zeros(model.input_size)))
        model = replace(model, output_shapes=shapes, _engine={})
    return model


def _batch_axis(value_info) -> str | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or dims[0].HasField("dim_value"):
        return None
    return dims[0].dim_param or None


def check_input(model_input_shape: tuple[int, ...], x: np.ndarray, where: str) -> np.ndarray:
    """Reshape one input to the model's shape, refusing wrong counts and non-finite values."""
    x = np.asarray(x, dtype=np.float64)
    expected = int(np.prod(model_input_shape))
    if x.size != expected:
        shape = "x".join(map(str, model_input_shape))
        raise InvalidInputError(
            f"{where} has {x.size} values, the circuit expects {expected} (shape {shape})"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise InvalidInputError(
            f"{where} holds {int(bad.sum())} non-finite value(s) (first at flat index {i}: "
            f"{x.ravel()[i]}) — inputs must be finite numbers"
        )
    return x.reshape(model_input_shape)


# Operators that can't become fixed circuit constraints: control flow, randomness, sequences
# and data-dependent shapes. Anything else ezkl refuses is reported from ezkl's own error.
UNSUPPORTED_OPS = frozenset({
    "Loop", "Scan", "If", "RandomNormal", "RandomUniform", "RandomNormalLike",
    "RandomUniformLike", "Multinomial", "Bernoulli", "SequenceConstruct", "SequenceAt",
    "SequenceInsert", "SplitToSequence", "ConcatFromSequence", "StringNormalizer",
    "TfIdfVectorizer", "NonZero", "Unique", "NonMaxSuppression",
})
ALTERNATIVES = {
    "Loop": "unroll the loop at export (a fixed number of steps)",
    "Scan": "unroll the recurrence at export (a fixed sequence length)",
    "If": "compute both branches and select with Where",
    "NonMaxSuppression": "run NMS after the model, outside the proof, on the proven boxes and scores",
    "NonZero": "use a fixed-size mask (Where) instead of data-dependent indices",
    "Unique": "use a fixed-size mask (Where) instead of data-dependent shapes",
    **{op: "pass the noise in as a model input" for op in (
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
        "Bernoulli")},
}
