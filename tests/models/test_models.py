import json

import numpy as np
import onnx
import pytest

import proofmint
from proofmint.errors import InvalidModelError, NotFoundError, UsageError
from proofmint.models import ZooModel, load_onnx

from ..conftest import ALL_ZOO, ZOO_NAMES


def test_zoo_lists_every_model_of_each_kind():
    listed = proofmint.models_list()
    assert all(isinstance(m, ZooModel) for m in listed)
    models = {m.name: m for m in listed}
    assert set(models) == set(ALL_ZOO)
    assert models["generator"].task == "generation"
    assert models["mnist_mlp"].input_shape == [1, 784]
    assert models["mnist_mlp"].to_dict()["input_shape"] == [1, 784]  # the CLI's --json shape


def test_mnist_shaped_mlp_exports_with_a_batch_axis(tmp_path):
    e = proofmint.models_export("mnist_mlp", out=tmp_path / "mnist")
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
    again = proofmint.models_export("mlp", out=tmp_path / "mlp")
    assert again.model_id == zoo["mlp"].model_id


def test_unknown_zoo_model_names_the_choices(tmp_path):
    with pytest.raises(NotFoundError, match="choose one of: mlp, lenet"):
        proofmint.models_export("resnet", out=tmp_path)


@pytest.mark.parametrize("name", ["mlp", "lenet"])
def test_onnxruntime_reference_matches_export(zoo, name):
    """onnxruntime on the exported ONNX gives the torch module's outputs (the module rebuilt:
    training is deterministic), on the sample input and on held-out calibration inputs."""
    import torch

    from proofmint.models.zoo import ZOO

    e = zoo[name]
    m = load_onnx(e.onnx)
    assert m.model_id == e.model_id
    x = np.array(json.loads(open(e.input).read())["input_data"][0])
    out = m.run(x)
    assert len(out) == 1 and out[0].shape == tuple(e.output_shapes[0])
    if name == "lenet":
        assert out[0].shape == (1, 10)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as export trains it: the same weights, bit for bit
    try:
        module = ZOO[name].build().module.eval()
    finally:
        torch.set_num_threads(threads)
    calib = np.array(json.loads(open(e.calibration).read())["input_data"][0]).reshape(-1, *e.input_shape[1:])
    for item in [x.reshape(e.input_shape), *calib[:8, None]]:
        with torch.no_grad():
            expected = module(torch.from_numpy(np.asarray(item, dtype=np.float32))).numpy()
        got = m.run(item)[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_not_onnx_is_rejected(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    with pytest.raises(InvalidModelError, match="not an ONNX model"):
        load_onnx(p)


def _tiny_onnx(path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), path)


def test_a_folder_names_its_model_file(tmp_path):
    ezkl_style = tmp_path / "ezkl"
    ezkl_style.mkdir()
    _tiny_onnx(ezkl_style / "network.onnx")  # EZKL's examples: the folder's only ONNX file
    assert load_onnx(ezkl_style).path == ezkl_style / "network.onnx"
    _tiny_onnx(ezkl_style / "other.onnx")
    with pytest.raises(UsageError, match="holds 2 ONNX files .*network.onnx, other.onnx"):
        load_onnx(ezkl_style)
    _tiny_onnx(ezkl_style / "model.onnx")  # model.onnx wins among several
    assert load_onnx(ezkl_style).path == ezkl_style / "model.onnx"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="no .onnx file in the folder"):
        load_onnx(empty)
