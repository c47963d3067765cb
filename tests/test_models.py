import json

import numpy as np
import onnx
import pytest

from proofmint.errors import InvalidModelError, NotFoundError
from proofmint.models import export, list_models, load_onnx

from .conftest import ALL_ZOO, ZOO_NAMES


def test_zoo_lists_every_model_of_each_kind():
    models = {m["name"]: m for m in list_models()}
    assert set(models) == set(ALL_ZOO)
    assert models["generator"]["task"] == "generation"
    assert models["mnist_mlp"]["input_shape"] == [1, 784]


def test_mnist_shaped_mlp_exports_with_a_batch_axis(tmp_path):
    e = export("mnist_mlp", tmp_path / "mnist")
    assert e.input_shape == [1, 784] and e.metric > 0.9
    assert load_onnx(e.onnx).batch_axis == "batch_size"


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_export_writes_checked_onnx_input_and_metadata(zoo, name):
    e = zoo[name]
    proto = onnx.load(e.onnx)
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 18
    meta = json.loads(open(e.metadata).read())
    assert meta["model_id"] == e.model_id and meta["input_shape"] == e.input_shape
    sample = json.loads(open(e.input).read())["input_data"][0]
    assert len(sample) == int(np.prod(e.input_shape))
    assert e.max_abs_diff_torch_vs_onnxruntime < 1e-4
    if e.task == "classification":
        assert e.metric > 0.8, f"{name} trained poorly: accuracy {e.metric}"
    else:
        assert e.metric < 0.05


def test_export_is_deterministic(zoo, tmp_path):
    again = export("mlp", tmp_path / "mlp")
    assert again.model_id == zoo["mlp"].model_id


def test_unknown_zoo_model_names_the_choices(tmp_path):
    with pytest.raises(NotFoundError, match="choose one of: mlp, lenet"):
        export("resnet", tmp_path)


def test_onnxruntime_reference_matches_export(zoo):
    m = load_onnx(zoo["lenet"].onnx)
    x = np.array(json.loads(open(zoo["lenet"].input).read())["input_data"][0])
    assert m.run(x)[0].shape == (1, 10)


def test_not_onnx_is_rejected(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    with pytest.raises(InvalidModelError, match="not an ONNX model"):
        load_onnx(p)
