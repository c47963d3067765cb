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

from proofmint.errors import InvalidModelError, NotFoundError, UsageError
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
    external_data: bool = False  # ``data`` holds weights read from files beside ``path``
    relabelled: str | None = None  # ``data`` carries an opset label its ops need (the file's was too old)
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

    def extremes(self, xs: np.ndarray) -> np.ndarray:
        """Per input in ``xs``, the min and max of every float tensor the graph computes
        (samples x tensors x 2): which inputs drive which layer furthest, the ranges ezkl's
        tables and range checks must cover."""
        return tensor_extremes(self.data, [self._feed(x) for x in xs])[1]

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


def with_shapes(proto):
    """``proto`` with the shapes and types onnx can infer; itself where inference fails (a
    graph onnx can't type: what needs a shape then says so, or leaves that tensor out)."""
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(proto)
    except Exception:
        return proto


def tensor_extremes(data: bytes, feeds: list[dict]) -> tuple[list[str], np.ndarray]:
    """The graph's float tensors (by name) and, per feed, each one's min and max (feeds x
    tensors x 2; zeros where a tensor holds a non-finite value)."""
    import onnx

    proto = with_shapes(onnx.load_model_from_string(data))  # tensors without a known type are left out
    floats = {v.name for v in proto.graph.value_info if v.type.tensor_type.elem_type in (1, 10, 11)}
    names = [o for n in proto.graph.node for o in n.output if o in floats]
    names += [o.name for o in proto.graph.output]
    try:
        import onnxruntime as ort

        known = {o.name for o in proto.graph.output}
        proto.graph.output.extend(v for v in proto.graph.value_info if v.name in floats and v.name not in known)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        wanted = [o.name for o in session.get_outputs() if o.name in set(names)]
        runs = [session.run(wanted, feed) for feed in feeds]
    except Exception:  # a graph onnxruntime refuses: the reference evaluator's intermediates
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(onnx.load_model_from_string(data))
        wanted = names
        runs = []
        for feed in feeds:
            every = evaluator.run(None, feed, intermediate=True)
            runs.append([every.get(n, np.zeros(1)) for n in wanted])
    out = np.zeros((len(feeds), len(wanted), 2))
    for i, values in enumerate(runs):
        for j, v in enumerate(values):
            v = np.asarray(v, dtype=np.float64)
            if v.size and np.isfinite(v).all():
                out[i, j] = v.min(), v.max()
    return wanted, out


def settle_ir(proto) -> None:
    """Raise ``proto``'s IR version to what its opsets need, and to at least 4.

    Graph tools write initializers apart from the graph's inputs, which IR 3 forbids (files from
    older exporters, as torch.onnx wrote them until 2019, list every weight among the inputs):
    a graph written back at the IR it was read at fails the checker. IR 4 and later allow
    either, and no reader here needs the older form."""
    from onnx import helper

    need = helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    proto.ir_version = max(proto.ir_version, need, 4)


def save_checked(proto, dest: Path, what: str) -> "OnnxModel":
    """An edited graph at the IR its opsets need, checked by onnx, written to ``dest`` and
    loaded; one the checker refuses is refused in one line naming ``what`` made it."""
    import onnx

    settle_ir(proto)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise InvalidModelError(f"{what} produced a graph onnx's checker refuses ({str(exc).splitlines()[0][:200]}) "
                                "— compile stops rather than prove another graph") from None
    dest.write_bytes(proto.SerializeToString())
    return load_onnx(dest)


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
    external = _embed_external_data(proto, path)
    if external:  # the model is its graph and its weights: one self-contained file from here on
        data = proto.SerializeToString()
    relabelled = None
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        relabelled = _relabel_opset(proto)
        if relabelled is None:
            raise InvalidModelError(f"{path} fails the ONNX checker: {first}") from None
        data = proto.SerializeToString()

    # An opset outside ezkl's tested 9-18 is converted by compile's rewrite pass.
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    for node in _unprovable(proto):
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        raise InvalidModelError(
            f"{path.name} uses {op} (node '{node.name or node.output[0]}') on values computed from "
            f"its input, which no circuit can prove and proofmint can't rewrite — "
            f"{ALTERNATIVES.get(node.op_type, 'export the model without it (standard ONNX ops only)')}"
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
        external_data=external,
        relabelled=relabelled,
    )
    if any(o is None for o in outputs):
        # A symbolic output dim (xgboost's class axis): one reference run says what it is.
        shapes = tuple(tuple(o.shape) or (1,) for o in model.run(np.zeros(model.input_size)))
        model = replace(model, output_shapes=shapes, _engine={})
    return model


def _relabel_opset(proto) -> str | None:
    """For a file whose exporter used an op newer than the opset it declares (torch writes Erf,
    an opset-9 op, into opset-7 GELU models; ezkl's tract reads them), the lowest opset at
    which every op is defined, set on ``proto`` if it then passes the checker; else None."""
    import onnx
    from onnx import defs

    entry = next((o for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if entry is None:
        return None
    declared = entry.version
    ops = {n.op_type for n in proto.graph.node if (n.domain or "") in ("", "ai.onnx")}
    for version in range(declared + 1, MAX_OPSET + 1):
        try:
            for op in ops:
                defs.get_schema(op, version, "")
        except Exception:  # some op not defined yet at this version
            continue
        entry.version = version
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError:
            entry.version = declared
            return None
        return f"opset {declared} -> {version}: the file uses ops its declared opset doesn't have"
    return None


def _embed_external_data(proto, path: Path) -> bool:
    """Read weights kept in files beside the model (torch's exporter writes ``model.onnx.data``
    for larger models) into ``proto``; whether there were any."""
    from onnx import external_data_helper as ext

    tensors = [t for t in [*proto.graph.initializer,
                           *(a.t for n in proto.graph.node for a in n.attribute if a.HasField("t"))]
               if ext.uses_external_data(t)]
    if not tensors:
        return False
    files = sorted({ext.ExternalDataInfo(t).location for t in tensors})
    try:
        ext.load_external_data_for_model(proto, str(path.parent))
    except Exception as exc:  # a missing file, a path outside the folder, a short read
        raise InvalidModelError(
            f"{path.name} keeps its weights in {', '.join(files)}, which can't be read from "
            f"{path.parent} ({str(exc).splitlines()[0][:160]}) — keep the data file(s) beside the "
            "model, as the exporter wrote them") from None
    if proto.ByteSize() >= 2**31:
        raise InvalidModelError(f"{path.name} with its weights is over 2 GiB, more than one ONNX file "
                                "holds and far more than a circuit on one machine proves")
    return True


def _unprovable(proto) -> list:
    """Nodes no circuit can prove (control flow, randomness, data-dependent shapes, other
    domains) that constant folding doesn't remove: a NonZero, Shape or Range over constants (a
    GPT's causal mask) is a constant, which ezkl's tract folds too."""
    def blocking(nodes) -> list:
        return [n for n in nodes if n.op_type in UNSUPPORTED_OPS or n.domain not in ("", "ai.onnx")]

    found = blocking(proto.graph.node)
    if not found or any(n.domain not in ("", "ai.onnx") for n in found):
        return found
    import onnx_graphsurgeon as gs

    try:
        graph = gs.import_onnx(proto)
        graph.fold_constants(error_ok=True).cleanup()
        return blocking(gs.export_onnx(graph).graph.node)
    except Exception:  # folding failed: what was found stands
        return found


def extract(src: Path, dest: Path, inputs: list[str], outputs: list[str]) -> Path:
    """The part of the graph at ``src`` from ``inputs`` to ``outputs``, written to ``dest`` as
    ezkl can read it: without the value_info onnx.utils infers, which trips tract's translator
    on a graph ezkl reads whole ("Translating node #1 ... Source ToTypedTranslator"), and with
    the model's batch symbol on every symbolic leading dim (shape inference names the batch of
    a Reshape's output afresh, ``unk__0``, a symbol ezkl's ``variables`` never fix)."""
    import onnx
    import onnx.utils

    onnx.utils.extract_model(str(src), str(dest), inputs, outputs)
    cut = onnx.load(dest)
    del cut.graph.value_info[:]
    _pass_through(cut.graph)
    source_inputs = onnx.load(src, load_external_data=False).graph.input
    batch = _batch_axis(source_inputs[0]) if source_inputs else None
    for v in [*cut.graph.input, *cut.graph.output] if batch else []:
        dims = v.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = batch
    onnx.save(cut, dest)
    return dest


def _pass_through(graph) -> None:
    """A tensor both input and output of a cut (a residual stream carried past an attention
    block) read through an Identity: tract can't type a graph whose output is its Source
    ("Translating node #0 ... Source ToTypedTranslator"). The input is renamed, the output keeps
    its name, so the segments' links still meet by name."""
    from onnx import helper

    outputs = {o.name for o in graph.output}
    for v in graph.input:
        if v.name in outputs:
            name, v.name = v.name, f"{v.name}:carried"
            for n in graph.node:
                n.input[:] = [v.name if t == name else t for t in n.input]
            graph.node.insert(0, helper.make_node("Identity", [v.name], [name]))


_PASS_THROUGH = frozenset({"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})


def index_tables(model: OnnxModel) -> list[int | None]:
    """Per graph input, the rows of the constant table it indexes (an embedding's Gather, the
    input reaching its indices through casts and reshapes only), else None: such an input
    takes any row number, whatever one sample shows."""
    import onnx

    graph = onnx.load_model_from_string(model.data).graph
    consts = {i.name: list(i.dims) for i in graph.initializer}
    consts |= {n.output[0]: list(a.t.dims) for n in graph.node if n.op_type == "Constant"
               for a in n.attribute if a.name == "value"}
    users: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            users.setdefault(t, []).append(n)

    def rows(tensor: str, depth: int = 0) -> int | None:
        for n in users.get(tensor, []):
            if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] == tensor and n.input[0] in consts:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
                dims = consts[n.input[0]]
                return int(dims[axis]) if dims else None
            if n.op_type in _PASS_THROUGH and n.input[0] == tensor and depth < 8:
                found = rows(n.output[0], depth + 1)
                if found:
                    return found
        return None

    return [rows(name) for name in model.input_names]


def _batch_axis(value_info) -> str | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or dims[0].HasField("dim_value"):
        return None
    return dims[0].dim_param or None


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
