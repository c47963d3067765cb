"""Export a zoo model: ``model.onnx``, a sample input, a held-out calibration set, ``model.json``."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from proofmint import ezkl_layer
from proofmint.errors import NotFoundError
from proofmint.store import atomic_write_bytes, atomic_write_json

from .onnx_model import MAX_OPSET, load_onnx
from .zoo import ZOO

CALIBRATION_SAMPLES = 64
BATCH_AXIS = "batch_size"  # the symbolic batch dimension: `compile --batch N` sets it (ezkl variables)


@dataclass(frozen=True)
class ExportResult:
    name: str
    out_dir: str
    onnx: str
    input: str
    calibration: str
    metadata: str
    model_id: str
    task: str
    dataset: str
    metric_name: str
    metric: float
    input_shape: list[int]
    output_shapes: list[list[int]]
    max_abs_diff_torch_vs_onnxruntime: float


@dataclass(frozen=True)
class ZooModel:
    name: str
    task: str
    dataset: str
    input_shape: list[int]
    description: str

    def to_dict(self) -> dict:
        return asdict(self)


def list_models() -> list[ZooModel]:
    """The zoo: name, task, dataset, input shape and a one-line description."""
    return [ZooModel(e.name, e.task, e.dataset, list(e.input_shape), e.description) for e in ZOO.values()]


def _static_output_dims(onnx_bytes: bytes, shape) -> bytes:
    """Pin the output's non-batch dims: the tracer leaves those after a Reshape symbolic."""
    import onnx

    proto = onnx.load_model_from_string(onnx_bytes)
    for dim, size in zip(list(proto.graph.output[0].type.tensor_type.shape.dim)[1:], shape[1:]):
        dim.Clear()
        dim.dim_value = int(size)
    return proto.SerializeToString()


def export(name: str, out: str | Path) -> ExportResult:
    """Train zoo model ``name`` (seconds, deterministic) and export it into folder ``out``."""
    import torch

    if name not in ZOO:
        raise NotFoundError(f"no zoo model '{name}' — choose one of: {', '.join(ZOO)}")
    entry = ZOO[name]
    torch.set_num_threads(1)
    trained = entry.build()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    sample = torch.from_numpy(trained.data.x_test[:1].reshape(entry.input_shape))
    buf = io.BytesIO()
    torch.onnx.export(trained.module, (sample,), buf, opset_version=MAX_OPSET, dynamo=False,
                      input_names=["input"], output_names=["output"], do_constant_folding=True,
                      dynamic_axes={"input": {0: BATCH_AXIS}, "output": {0: BATCH_AXIS}})
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
        model_id=model.model_id,
        task=entry.task,
        dataset=trained.data.name,
        metric_name=trained.metric_name,
        metric=round(trained.metric, 6),
        input_shape=list(model.input_shape),
        output_shapes=[list(s) for s in model.output_shapes],
        max_abs_diff_torch_vs_onnxruntime=diff,
    )
    atomic_write_bytes(out / "model.json", (json.dumps(asdict(result), indent=2) + "\n").encode())
    return result
