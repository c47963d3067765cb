import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

import proofmint
from proofmint.errors import InvalidModelError, NotFoundError, UsageError
from proofmint.models import ZooModel, export, load_onnx

from ..conftest import ALL_ZOO, ZOO_NAMES, run_cli


def test_zoo_lists_every_model_of_each_kind():
    listed = proofmint.models_list()
    assert all(isinstance(m, ZooModel) for m in listed)
    models = {m.name: m for m in listed}
    assert set(models) == set(ALL_ZOO)
    assert models["generator"].task == "generation"
    assert models["mnist_mlp"].input_shape == [1, 784]
    assert models["mnist_mlp"].to_dict()["input_shape"] == [1, 784]  # the CLI's --json shape
    assert models["gpt"].input_shape == [1, 64] and models["generator28"].task == "generation"
    assert models["gpt"].sizes == ["default", "quick", "small", "tiny"] and models["lenet"].sizes == []
    shown = run_cli("models", "list")  # the sizes `models export --size` takes, where `--help` sends you
    assert shown.returncode == 0 and "(--size default, quick, small, tiny)" in shown.stdout, shown.stderr


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


@pytest.mark.slow  # trains for ~20 s
def test_gpt_exports_the_next_character_logits_and_its_vocabulary(tmp_path):
    """The zoo GPT at its quick size (the default's shape, toy width): int64 token ids of a
    held-out prompt in, the logits of the character after it out, and the vocabulary that turns
    both into text in model.json; its predictions beat always guessing the commonest character."""
    from proofmint.models.zoo import GPT_CONTEXT, stdlib_text

    e = export("gpt", tmp_path / "gpt", size="quick")
    proto = onnx.load(e.onnx)
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 18
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    model = load_onnx(e.onnx)
    assert model.input_shape == (1, GPT_CONTEXT) and model.batch_axis is None
    meta = json.loads(open(e.metadata).read())
    vocab = meta["vocab"]
    assert meta["size"] == "quick" and vocab == e.vocab
    assert e.output_shapes == [[1, len(vocab)]] and len(set(vocab)) == len(vocab)
    assert e.max_abs_diff_torch_vs_onnxruntime < 1e-4  # over the 64 calibration windows

    text = stdlib_text()
    held_out = text[int(0.9 * len(text)):]
    assert vocab == sorted(set(text))
    prompt = json.loads(open(e.input).read())["input_data"][0]
    assert len(prompt) == GPT_CONTEXT and "".join(vocab[int(i)] for i in prompt) in held_out
    windows = np.array(json.loads(open(e.calibration).read())["input_data"][0]).reshape(-1, GPT_CONTEXT)
    assert len(windows) == 64
    # what follows window k of the held-out text, and the commonest character's share of those
    targets = [vocab.index(held_out[(k + 1) * GPT_CONTEXT]) for k in range(len(windows))]
    following = held_out[GPT_CONTEXT::GPT_CONTEXT]
    commonest = Counter(following).most_common(1)[0][1] / len(following)
    assert e.metric_name == "next_char_accuracy" and e.metric > commonest + 0.05
    onnx_hits = np.mean([model.run(w)[0].argmax() == t for w, t in zip(windows, targets)])
    assert onnx_hits > commonest  # the ONNX file itself predicts text, not only the torch module


def _untrained_default_gpt(folder):
    """The default-size GPT with its initial weights, exported as the zoo does (batch 1)."""
    import torch

    from proofmint.models.zoo import GPT_CONTEXT, GPT_SIZES, CharGPT

    torch.manual_seed(0)
    module = CharGPT(96, GPT_SIZES["default"]).eval()
    path = folder / "gpt.onnx"
    torch.onnx.export(module, (torch.zeros(1, GPT_CONTEXT, dtype=torch.long),), str(path), opset_version=18,
                      dynamo=False, input_names=["input"], output_names=["output"])
    return module, path


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # nanoGPT's size arithmetic: static here
def test_gpt_default_size_is_nanogpt_shaped(tmp_path):
    """The default GPT, untrained: >= 4 pre-norm blocks of 4 heads, a 64-character context,
    ~0.12 M parameters, and in its ONNX graph nanoGPT's ops: a Where filling -inf (the causal
    mask), softmax and GELU (Erf) per block, one LayerNormalization per residual half and at the end."""
    from onnx import numpy_helper

    from proofmint.models.zoo import GPT_CONTEXT, GPT_SIZES

    size = GPT_SIZES["default"]
    assert (size.layers, size.heads, GPT_CONTEXT) == (4, 4, 64)
    m, path = _untrained_default_gpt(tmp_path)
    assert 100_000 < sum(p.numel() for p in m.parameters()) < 250_000
    assert m.wte.weight is m.lm_head.weight  # tied, as nanoGPT
    graph = onnx.load(path).graph
    ops = Counter(n.op_type for n in graph.node)
    assert ops["Softmax"] == ops["Erf"] == size.layers and ops["LayerNormalization"] == 2 * size.layers + 1
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts |= {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}
    masks = [n for n in graph.node if n.op_type == "Where" and np.all(np.isneginf(consts.get(n.input[1], 0)))]
    assert len(masks) == size.layers


@pytest.mark.slow  # ezkl lays out ~12 M rows: ~30 s
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_gpt_default_size_needs_segments_each_of_which_fits(tmp_path):
    """The figures GPT_SIZES and the README state: at ezkl's defaults, the default GPT is more
    than 2^23 rows as one circuit (its key would not fit this machine's 24 GB), while each
    residual half of a block, where a segment can end, is under 2^21 rows."""
    from proofmint import ezkl_layer
    from proofmint.circuits.rewrite import rewrite
    from proofmint.models.onnx_model import extract
    from proofmint.models.zoo import GPT_CONTEXT, GPT_SIZES

    size = GPT_SIZES["default"]
    _, path = _untrained_default_gpt(tmp_path)
    samples = np.random.default_rng(0).integers(0, 96, (8, GPT_CONTEXT)).astype(float)
    graph, _ = rewrite(load_onnx(path), tmp_path / "rewritten.onnx", samples)  # the -inf mask

    def rows(onnx_path):
        settings = onnx_path.with_suffix(".settings.json")
        ezkl_layer.gen_settings(onnx_path, settings, ezkl_layer.run_args(
            input_visibility="public", output_visibility="public", param_visibility="fixed"))
        return json.loads(settings.read_text())["num_rows"]

    assert rows(graph.path) > 2 ** 23
    last = f"/h.{size.layers - 1}/Add_1_output_0"
    for part, (start, end) in {"embeddings": ("input", "/Add_output_0"),
                               "attention": ("/h.0/Add_1_output_0", "/h.1/Add_output_0"),
                               "mlp": ("/h.1/Add_output_0", "/h.1/Add_1_output_0"),
                               "head": (last, "output")}.items():
        cut = extract(graph.path, tmp_path / f"{part}.onnx", [start], [end])
        assert rows(cut) < 2 ** 21, part


@pytest.mark.slow  # trains for ~15 s
def test_generator28_draws_a_28x28_image_of_the_class_it_is_given(tmp_path):
    """latent 0 + class c -> an image nearest to class c's mean digit, for every class; held-out
    reconstructions beat the mean image; the output renders as an upscaled PNG like the 8x8's."""
    from proofmint import ezkl_layer
    from proofmint.verifier.content import render
    e = export("generator28", tmp_path / "g28")
    onnx.checker.check_model(onnx.load(e.onnx))
    model = load_onnx(e.onnx)
    assert model.input_shape == (1, 18) and model.batch_axis == "batch_size"
    assert e.output_shapes == [[1, 1, 28, 28]] and render.image_dims(e.output_shapes[0]) == (1, 28, 28)
    assert e.max_abs_diff_torch_vs_onnxruntime < 1e-4

    codes = np.load(tmp_path / "g28" / "training" / "x_train.npy")
    images = np.load(tmp_path / "g28" / "training" / "y_train.npy").reshape(len(codes), -1)
    labels = codes[:, 8:].argmax(1)
    mean_image_mse = float(((images - images.mean(0)) ** 2).mean())
    assert e.metric_name == "reconstruction_mse" and e.metric < 0.25 * mean_image_mse
    class_means = np.stack([images[labels == c].mean(0) for c in range(10)])
    for c in range(10):
        drawn = model.run(np.concatenate([np.zeros(8), np.eye(10)[c]]))[0]
        assert ((class_means - drawn.reshape(1, -1)) ** 2).sum(1).argmin() == c
    shown = render.render([drawn], e.output_shapes, "regression", "g28", b"{}")
    assert shown.aigc_type == "image" and render.png_pixels(shown.image).shape == (336, 336)
    settings = tmp_path / "settings.json"  # ezkl's defaults: one circuit of 2^19 rows
    ezkl_layer.gen_settings(Path(e.onnx), settings, ezkl_layer.run_args(
        input_visibility="public", output_visibility="public", param_visibility="fixed",
        variables=[("batch_size", 1)]))
    assert 2 ** 18 < json.loads(settings.read_text())["num_rows"] < 2 ** 19


def test_a_size_the_zoo_model_does_not_have_is_refused(tmp_path):
    with pytest.raises(UsageError, match="no size 'huge' — choose one of: default, quick, small, tiny"):
        export("gpt", tmp_path, size="huge")
    with pytest.raises(UsageError, match="has one size"):
        export("mlp", tmp_path, size="quick")
    r = run_cli("models", "export", "gpt", "--size", "huge", "--out", tmp_path / "g")
    assert r.returncode == 2 and "choose one of: default, quick, small, tiny" in r.stderr, r.stderr


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


@pytest.mark.slow  # trains a model (about a minute)
def test_upsampler_takes_the_generators_image_and_doubles_it(zoo, tmp_path):
    """The lineage child: its input is exactly what the zoo generator outputs (an 8x8 image in
    [0, 1]), its output a 16x16 image close to the bicubic enlargement it was trained on."""
    e = proofmint.models_export("upsampler", out=tmp_path / "up")
    gen, up = load_onnx(zoo["generator"].onnx), load_onnx(e.onnx)
    assert gen.output_shapes[0] == up.input_shapes[0] == (1, 1, 8, 8)
    assert up.output_shapes[0] == (1, 1, 16, 16) and e.metric < 0.01
    image = gen.run(np.array(json.loads(open(zoo["generator"].input).read())["input_data"][0]))[0]
    big = up.run(image.ravel())[0]
    assert big.shape == (1, 1, 16, 16) and 0 <= big.min() and big.max() <= 1
