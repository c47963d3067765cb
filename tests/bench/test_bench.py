"""`proofmint bench --quick`: the report's structure and that every ratio is computed.

How fast anything is, is the report's business, never an assert here.
"""

import json

import pytest

import proofmint
from proofmint.errors import UsageError

from ..conftest import run_cli


def test_bench_is_keyword_only_and_refuses_unknown_models_before_any_work(tmp_path):
    from proofmint.benchmarks import BenchResult, harness

    assert proofmint.bench is harness.bench and proofmint.BenchResult is BenchResult
    with pytest.raises(TypeError):
        proofmint.bench(["mlp"])  # keyword-only, as the CLI's options
    with pytest.raises(UsageError, match="unknown bench model"):
        proofmint.bench(models=["resnet"], out=tmp_path / "bench")
    with pytest.raises(UsageError, match="must be >= 1"):
        proofmint.bench(models=["mlp"], repeat=-1, out=tmp_path / "bench")
    with pytest.raises(UsageError, match="must be >= 1"):
        proofmint.bench(models=["mlp"], batch=[1, 0], out=tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


@pytest.mark.slow  # compiles, proves, deploys and mints (no HEAVY fixture marks it)
def test_quick_bench_writes_a_complete_report(tmp_path):
    out = tmp_path / "bench"
    r = run_cli("bench", "--quick", "--out", out, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    printed = json.loads(r.stdout)
    assert printed["out"] == str(out)
    files = printed["files"]
    for name in ("results.json", "results.md", "prove_time_vs_logrows.png", "gas_vs_instances.png",
                 "accuracy_vs_prove_time.png"):
        assert str(out / name) in files and (out / name).stat().st_size > 0
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    assert res["machine"]["cores"] >= 1 and res["machine"]["versions"]["ezkl"] == "23.0.5"
    assert {(x["visibility"], x["batch"]) for x in res["runs"]} == {("public", 1), ("hashed", 1)}
    assert [x["batch"] for x in res["batch"]] == [1, 2]
    for run in res["runs"] + res["batch"]:
        for key in ("prove_s", "witness_s", "verify_s", "prove_wall_s"):
            assert run[key]["median"] > 0 and run[key]["min"] <= run[key]["median"] <= run[key]["max"]
        assert run["compile_cold_s"] > run["compile_hit_s"] > 0
        assert run["verify_gas"] > 0 and run["mint_gas"] > run["verify_gas"] // run["batch"]
        assert run["tokens"] == run["batch"] and run["argmax_agreement"] is not None
    base = res["baselines"]["mlp"]
    assert base["bare_ezkl"]["times"]["prove"]["median"] > 0 and base["direct_prove_s"]["median"] > 0
    ratios = res["ratios"]
    per = ratios["per_model"]["mlp"]
    for key in ("prove_vs_bare_ezkl", "prove_overhead", "prove_core_overhead", "proof_overhead_factor",
                "cache_hit_speedup", "compile_vs_bare_ezkl"):
        assert isinstance(per[key], (int, float)), key
    assert per["fidelity_ours_vs_bare"][0].startswith("argmax ")  # the wine MLP is a classifier
    assert set(ratios["gas_hashed_vs_public"]["mlp balanced"]) == {"verify", "mint"}
    assert [b["batch"] for b in ratios["batch"]] == [2]
    assert all(isinstance(v, float) for v in ratios["batch"][0].values() if v != 2)
    md = (out / "results.md").read_text()
    for heading in ("## Per configuration", "## Baselines in the same run", "## Gas: hashed vs public input",
                    "## Batch proofs", "## Goals"):
        assert heading in md


@pytest.mark.slow  # compiles, proves, deploys and mints (no HEAVY fixture marks it)
def test_segmented_bench_mints_each_form_as_one_token(tmp_path):
    out = tmp_path / "bench"
    r = proofmint.bench(segmented=True, only=["zoo:mlp@segments=2,workers=1"], out=out)
    row = r.results["segmented"][0]
    single, seg = row["single"], row["segmented"]
    assert single["mint"]["tokens"] == 1 and single["mint"]["segment_verify_gas"] == []
    assert seg["segments"] == 2 and seg["mint"]["tokens"] == 1
    alone = seg["mint"]["segment_verify_gas"]
    assert len(alone) == 2 and seg["mint"]["gas"] > sum(alone) > 0  # both checked in the one mint
    table = (out / "segmented.md").read_text()
    assert "mint gas" in table and f"{seg['mint']['gas']:,}" in table


def test_a_segmented_model_whose_proof_outlasts_a_session_is_benched_compiled_only():
    """``workers=0``: compile only (EZKL's mnist_gan takes hours to prove on 2 cores); its row
    shows the plan, the keys and the error, and no prove time or gas it did not measure."""
    from proofmint.benchmarks import segmented

    assert segmented.parse("gan@max-key=12G,workers=0") == ("gan", {"max_key": "12G", "provers": ()})
    row = {"model": "gan", "single": {"refused": "over the budget"}, "segmented": {
        "compile_s": 3600.4, "segments": 2, "link": "hashed", "logrows": [20, 18], "rows": [921_857, 215_209],
        "pk_bytes": [10_000_000_000, 2_000_000_000], "error": 0.004, "why": "2 segments",
        "key_estimate_bytes": [12_000_000_000, 3_000_000_000]}}
    md = segmented.markdown({"segmented": [row]}, "a machine")
    line = next(x for x in md.splitlines() if x.startswith("| gan | 2 segments"))
    assert line.endswith("| 0.40% | — | — | — | — | — |"), line
    assert "Compiled only (gan, compile 3,600 s): not proven in this run; keys estimated at plan time 12,000, 3,000 MB." in md


@pytest.mark.parametrize("gas,over", [(16_777_216, False), (16_777_217, True)])
def test_a_segmented_mint_over_eip7825s_cap_is_flagged_in_the_table(gas, over):
    """A mint anvil takes in one transaction but an Osaka chain, which caps a transaction at
    2**24 gas, would refuse: the table says so beside the gas."""
    from proofmint.benchmarks import segmented

    row = {"model": "gan", "single": {"refused": "over the budget"}, "segmented": {
        "compile_s": 1.0, "segments": 2, "link": "hashed", "logrows": [19, 19], "rows": [1, 1],
        "pk_bytes": [1, 1], "error": 0.004, "why": "2 segments",
        "prove_1": {"wall_s": 1.0, "peak_rss_mb": [1.0, 1.0]},
        "mint": {"tokens": 1, "gas": gas, "segment_verify_gas": [1, 1]}}}
    line = next(x for x in segmented.markdown({"segmented": [row]}, "m").splitlines() if x.startswith("| gan | 2"))
    assert f"{gas:,} (1, 1)" in line
    assert ("over EIP-7825's per-transaction cap" in line) is over
