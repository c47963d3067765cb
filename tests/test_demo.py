"""`make demo` as a new user runs it: the whole flow, and the asset it leaves on disk."""

import json

import pytest

from proofmint.verifier.content.publish import schema_errors

from .conftest import run_cli


@pytest.mark.slow
def test_the_demo_mints_a_verified_asset_and_leaves_its_image(tmp_path):
    r = run_cli("demo", "--out", tmp_path / "demo", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert d["verdict"]["valid"] and d["token_uri"].startswith("ipfs://bafkrei")
    assert schema_errors(d["metadata"]) == [] and d["metadata"]["aigc_type"] == "image"
    from PIL import Image

    with Image.open(d["image"]) as img:
        assert img.width >= 320 and img.format == "PNG"
    assert any(c.startswith("proofmint verify-asset") for c in d["commands"])
    assert any(c.startswith("proofmint gateway") for c in d["commands"])
