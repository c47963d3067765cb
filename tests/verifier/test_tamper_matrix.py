"""Every visibility combination the CLI offers: it compiles, proves and verifies, and rejects
tampering (one shared behaviour) — or it is refused at compile time with the reason."""

from __future__ import annotations

import itertools
import json

import pytest

import proofmint
from proofmint.encoding import INPUT_VISIBILITIES, OUTPUT_VISIBILITIES, PARAM_VISIBILITIES
from proofmint.errors import UsageError

from ..conftest import write_tiny_model
from .tampering import assert_rejects_tampering

COMBOS = list(itertools.product(INPUT_VISIBILITIES, OUTPUT_VISIBILITIES, PARAM_VISIBILITIES))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 6-8-3 Gemm-Relu-Gemm graph built by hand (not a zoo model), with one input.json."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("input_vis,output_vis,param_vis", COMBOS)
def test_visibility_combination(tiny, ws, anvil, tmp_path, input_vis, output_vis, param_vis):
    options = dict(input_visibility=input_vis, output_visibility=output_vis, param_visibility=param_vis)
    if param_vis == "hashed":
        # ezkl gives any weights of one shape the same verifying key: a hash of the params
        # among the instances binds nothing the registry checks, so it is refused, not kept.
        with pytest.raises(UsageError, match="does not bind the weights"):
            proofmint.compile(tiny / "model.onnx", workspace=ws, **options)
        return
    c = proofmint.compile(tiny / "model.onnx", workspace=ws, **options)
    assert c.package.visibility.to_dict() == {"input": input_vis, "output": output_vis, "param": param_vis}
    assert c.package.quantization["relative_max_error"] <= 0.01
    r = proofmint.prove(c.circuit_id, input=tiny / "input.json", out=tmp_path / "p.json", workspace=ws)
    assert not r.failures
    bundle = json.loads(open(r.bundles[0]).read())
    assert (bundle["input"] is None) == (input_vis == "private")
    tried = assert_rejects_tampering(r.bundles[0], c.package, ws, anvil.url, tmp_path)
    assert len(tried) >= 8
