"""Export a zoo model: ``model.onnx``, a sample input, a held-out calibration set, ``model.json``,
and its training data with a manifest (``training.json``) that a registration commits to."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer
from proofmint.errors import NotFoundError, UsageError
from proofmint.store import atomic_write_bytes, atomic_write_json, sha256_file

from .onnx_model import MAX_OPSET, load_onnx

CALIBRATION_SAMPLES = 64
TRAINING_FORMAT = "proofmint/training-data/v1"
NO_ADDRESS = "0x" + "00" * 20  # a contributor credited by name, with no address to pay
# Who made the zoo's data: scikit-learn ships these UCI datasets.
DATA_CONTRIBUTORS = {
    "wine": "UCI Machine Learning Repository: Wine (Forina et al.), via scikit-learn",
    "digits": "UCI ML hand-written digits (Alpaydin & Kaynak), via scikit-learn",
    "python": "CPython's authors (Python Software Foundation, PSF License): its standard library's docstrings",
}
BATCH_AXIS = "batch_size"  # the symbolic batch dimension: `compile --batch N` sets it (ezkl variables)


@dataclass(frozen=True)
class ExportResult:
    name: str
    out_dir: str
    onnx: str
    input: str
    calibration: str
    metadata: str
    training: str  # the training-data manifest
    model_id: str
    task: str
    dataset: str
    metric_name: str
    metric: float
    input_shape: list[int]
    output_shapes: list[list[int]]
    max_abs_diff_torch_vs_onnxruntime: float
    size: str | None = None  # the zoo size exported, for a model that has several
    vocab: list[str] | None = None  # a language model's output index -> character


@dataclass(frozen=True)
class ZooModel:
    name: str
    task: str
    dataset: str
    input_shape: list[int]
    description: str
    sizes: list[str]  # `models export NAME --size S` (the default first; empty: one size)

    def to_dict(self) -> dict:
        return asdict(self)


def list_models() -> list[ZooModel]:
    """The zoo: name, task, dataset, input shape, a one-line description and its sizes."""
    from .zoo import ZOO  # torch: loaded by the commands that train, not by every import

    return [ZooModel(e.name, e.task, e.dataset, list(e.input_shape), e.description, list(e.sizes))
            for e in ZOO.values()]


def _static_output_dims(onnx_bytes: bytes, shape) -> bytes:
    """Pin the output's non-batch dims: the tracer leaves those after a Reshape symbolic."""
    import onnx

    proto = onnx.load_model_from_string(onnx_bytes)
    for dim, size in zip(list(proto.graph.output[0].type.tensor_type.shape.dim)[1:], shape[1:]):
        dim.Clear()
        dim.dim_value = int(size)
    return proto.SerializeToString()


def _training_manifest(out: Path, dataset: str, data_name: str, x: np.ndarray, y: np.ndarray) -> Path:
    """The training arrays as .npy files, listed with their sha256 and contributor."""
    contributor = DATA_CONTRIBUTORS[dataset.split()[0]]
    files = []
    for stem, array in (("x_train", x), ("y_train", y)):
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        path = atomic_write_bytes(out / "training" / f"{stem}.npy", buf.getvalue())
        files.append({"path": f"training/{stem}.npy", "sha256": "0x" + sha256_file(path),
                      "bytes": path.stat().st_size, "contributor": NO_ADDRESS,
                      "contributor_name": contributor})
    return atomic_write_json(out / "training.json", {"format": TRAINING_FORMAT, "dataset": data_name,
                                                     "files": files})


def export(name: str, out: str | Path, *, size: str | None = None) -> ExportResult:
    """Train zoo model ``name`` (seconds, deterministic; the GPT minutes) and export it into
    folder ``out``; ``size``: one of the entry's named sizes (default: its first)."""
    import torch

    from .zoo import ZOO

    if name not in ZOO:
        raise NotFoundError(f"no zoo model '{name}' — choose one of: {', '.join(ZOO)}")
    entry = ZOO[name]
    if size is not None and size not in entry.sizes:
        choices = f"choose one of: {', '.join(entry.sizes)}" if entry.sizes else "it has one size: leave size out"
        raise UsageError(f"zoo model '{name}' has no size '{size}' — {choices}")
    torch.set_num_threads(1)
    trained = entry.build(size) if size is not None else entry.build()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    sample = torch.from_numpy(trained.data.x_test[:1].reshape(entry.input_shape))
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's note on nanoGPT's size arithmetic: sizes are static
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(trained.module, (sample,), buf, opset_version=MAX_OPSET, dynamo=False,
                          input_names=["input"], output_names=["output"], do_constant_folding=True,
                          dynamic_axes={"input": {0: BATCH_AXIS}, "output": {0: BATCH_AXIS}}
                          if entry.batch_axis else None)
    with torch.no_grad():
        sample_out = trained.module(sample)
    onnx_path = atomic_write_bytes(out / "model.onnx", _static_output_dims(buf.getvalue(), sample_out.shape))
    model = load_onnx(onnx_path)  # runs onnx.checker, the same path as any user model

    held_out = trained.data.x_test[:CALIBRATION_SAMPLES]
    with torch.no_grad():
        torch_out = trained.module(torch.from_numpy(held_out.reshape(-1, *entry.input_shape[1:])))
    ort_out = np.stack([model.run(x)[0].ravel() for x in held_out])
    diff = float(np.abs(ort_out - torch_out.numpy().reshape(len(held_out), -1)).max())

    input_path = atomic_write_json(out / "input.json", ezkl_layer.input_json(np.round(held_out[:1], 6)))
    calib_path = atomic_write_json(out / "calibration.json", ezkl_layer.input_json(np.round(held_out, 6)))
    result = ExportResult(
        name=name,
        out_dir=str(out),
        onnx=str(onnx_path),
        input=str(input_path),
        calibration=str(calib_path),
        metadata=str(out / "model.json"),
        training=str(_training_manifest(out, entry.dataset, trained.data.name, trained.data.x_train,
                                        trained.data.y_train)),
        model_id=model.model_id,
        task=entry.task,
        dataset=trained.data.name,
        metric_name=trained.metric_name,
        metric=round(trained.metric, 6),
        input_shape=list(model.input_shape),
        output_shapes=[list(s) for s in model.output_shapes],
        max_abs_diff_torch_vs_onnxruntime=diff,
        size=size or (entry.sizes[0] if entry.sizes else None),
        vocab=trained.vocab,
    )
    atomic_write_bytes(out / "model.json", (json.dumps(asdict(result), indent=2) + "\n").encode())
    return result
