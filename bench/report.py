"""The bench report: results.json, a results.md read against the goals, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from .baseline import bare_compile_s

# (what, how to read it from the ratios, goal, is it met). Goals are read, never asserted.
GOALS = (
    ("balanced prove time / bare ezkl `resources`", "prove_vs_bare_ezkl", "<= 1.0", lambda v: v <= 1.0),
    ("`proofmint prove` wall time over a direct ezkl witness+prove", "prove_overhead", "<= 5 %",
     lambda v: v <= 0.05),
    ("balanced cold compile (SRS cached) / bare ezkl's", "compile_vs_bare_ezkl", "<= 1.0", lambda v: v <= 1.0),
    ("cache-hit compile speed-up over cold", "cache_hit_speedup", ">= 10x", lambda v: v >= 10),
)


def write(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "results.json", out / "results.md"]
    files[0].write_text(json.dumps(results, indent=2) + "\n")
    files[1].write_text(markdown(results))
    return files + plots(results, out)


def _layout(layout: dict | None) -> str:
    if not layout:
        return "—"
    freivalds = " + Freivalds" if layout["freivalds_columns"] else ""
    return f"{layout['num_inner_cols']} columns{freivalds}"


def _fmt_s(d: dict | None) -> str:
    if not d:
        return "—"
    return f"{d['median']:.2f} ({d['min']:.2f}–{d['max']:.2f})" if d["n"] > 1 else f"{d['median']:.2f}"


def _ratio(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _pct(v) -> str:
    return "—" if v is None else f"{v:.1%}"


def markdown(r: dict) -> str:
    lines = _header(r) + _runs(r) + _baselines(r) + _gas(r) + _batches(r) + _goals(r)
    lines += ["", "Plots: `prove_time_vs_logrows.png`, `gas_vs_instances.png`, `accuracy_vs_prove_time.png`.", ""]
    return "\n".join(lines)


def _header(r: dict) -> list[str]:
    m = r["machine"]
    cfg = r["config"]
    return [
        "# proofmint bench", "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, GPU: {m['gpu'] or 'none'}; "
        f"{m['os']}, Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; prover threads: {m['prover_threads']}.",
        f"Run: models {', '.join(cfg['models'])}; targets {', '.join(cfg['targets'])}; visibility "
        f"{', '.join(cfg['visibility'])}; batch {', '.join(map(str, cfg['batch']))}; repeat {cfg['repeat']}"
        f"{' (--quick)' if cfg['quick'] else ''}; {r['wall_s']:.0f} s in all.",
        "Times in seconds: median (min–max) over the repeats. Ratios compare figures of this run only."]


def _runs(r: dict) -> list[str]:
    lines = ["", "## Per configuration", "",
             "| model | target | input | batch | logrows | rows | scale | instances | compile cold / hit | "
             "setup | witness | prove | verify | peak MB | pk MB | proof B | argmax agr. | max abs err | "
             "verifyProof gas | mint gas |",
             "|" + "---|" * 20]
    for x in r["runs"] + [b for b in r["batch"] if b not in r["runs"]]:
        cold = f"{x['compile_cold_s']:.1f}" if x["compile_cold_s"] else "cached"
        lines.append(
            f"| {x['model']} | {x['target']} | {x['visibility']} | {x['batch']} | {x['logrows']} | "
            f"{x['num_rows']:,} | {x['input_scale']} | {x['instances']} | {cold} / {x['compile_hit_s']:.3f} | "
            f"{x['compile_s'].get('setup', 0):.1f} | {_fmt_s(x['witness_s'])} | {_fmt_s(x['prove_s'])} | "
            f"{_fmt_s(x['verify_s'])} | {x['peak_rss_mb']:.0f} | {x['pk_bytes'] / 1e6:.0f} | "
            f"{x['proof_bytes']:,} | {_pct(x['argmax_agreement'])} | {x['max_abs_error']:.3g} | "
            f"{x['verify_gas']:,} ({x['verifier']}) | {x['mint_gas']:,} ({x['tokens']} token"
            f"{'s' if x['tokens'] > 1 else ''}) |")
    return lines


def _baselines(r: dict) -> list[str]:
    lines = ["", "## Baselines in the same run", "",
             "Bare ezkl = plain ezkl calls (default run args: public input/output, fixed params; "
             "`resources` calibration), no proofmint code. Direct prove = `ezkl.gen_witness` + "
             "`ezkl.prove` on proofmint's circuit (its first configuration of the model).", "",
             "| model | onnxruntime / inference | bare ezkl: logrows / scale / prove / fidelity | "
             "proofmint balanced prove ÷ bare | bare ezkl cold compile | proofmint balanced compile ÷ bare | "
             "direct witness+prove | proofmint prove wall | overhead "
             "(wall / in-worker) | prove ÷ inference | cache-hit speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, b in r["baselines"].items():
        q = r["ratios"]["per_model"][name]
        bare = b["bare_ezkl"]
        first = next(x for x in r["runs"] if x["circuit_id"] == b["compared_with"]["circuit_id"])
        lines.append(
            f"| {name} | {r['models'][name]['onnxruntime_inference_s'] * 1e6:.0f} µs | {bare['logrows']} / "
            f"{bare['input_scale']} / {_fmt_s(bare['times']['prove'])} / {q['fidelity_ours_vs_bare'][1]} | "
            f"{q['prove_vs_bare_ezkl']:.2f} ({q['fidelity_ours_vs_bare'][0]}) | "
            f"{bare_compile_s(bare):.1f} | {_ratio(q.get('compile_vs_bare_ezkl'))} | "
            f"{_fmt_s(b['direct_prove_s'])} | {_fmt_s(first['prove_wall_s'])} | "
            f"{q['prove_overhead']:+.1%} / {q['prove_core_overhead']:+.1%} | {q['proof_overhead_factor']:,.0f}x | "
            f"{q['cache_hit_speedup'] or '—'}x |")
    return lines


def _gas(r: dict) -> list[str]:
    if not r["ratios"]["gas_hashed_vs_public"]:
        return []
    return (["", "## Gas: hashed vs public input", "", "| model, target | verifyProof hashed ÷ public | "
             "mint hashed ÷ public |", "|---|---|---|"]
            + [f"| {k} | {v['verify']:.3f} | {v['mint']:.3f} |" for k, v in r["ratios"]["gas_hashed_vs_public"].items()])


def _batches(r: dict) -> list[str]:
    if not r["batch"]:
        return []
    b0 = r["batch"][0]
    lines = ["", f"## Batch proofs ({b0['model']}, {b0['target']}, {b0['visibility']} input)", "",
             "| batch | logrows | layout | prove (whole batch) | prove / inference | verifyProof gas / inference | "
             "mint gas / inference | prove / inf. ÷ single | verify gas / inf. ÷ single | mint gas / inf. ÷ single |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    by_n = {x["batch"]: x for x in r["ratios"]["batch"]}
    for x in r["batch"]:
        n, q = x["batch"], by_n.get(x["batch"])
        lines.append(
            f"| {n} | {x['logrows']} | {_layout(x.get('layout'))} | {x['prove_s']['median']:.2f} | {x['prove_s']['median'] / n:.2f} | "
            f"{x['verify_gas'] // n:,} | {x['mint_gas'] // n:,} | "
            + (f"{q['prove_per_inference_vs_single']:.3f} | {q['verify_gas_per_inference_vs_single']:.3f} | "
               f"{q['mint_gas_per_inference_vs_single']:.3f} |" if q else "1 | 1 | 1 |"))
    return lines


def _goals(r: dict) -> list[str]:
    lines = ["", "## Goals", "", "| goal | measured | target | met |", "|---|---|---|---|"]
    for what, key, goal, ok in GOALS:
        for name, q in r["ratios"]["per_model"].items():
            v = q[key]
            shown = "—" if v is None else (f"{v:+.1%}" if key == "prove_overhead" else f"{v:g}")
            lines.append(f"| {what} ({name}) | {shown} | {goal} | {'—' if v is None else ('yes' if ok(v) else 'no')} |")
    for x in r["ratios"]["batch"]:
        lines.append(f"| batch-{x['batch']} prove time per inference ÷ single | "
                     f"{x['prove_per_inference_vs_single']:.3f} | <= 0.25 | "
                     f"{'yes' if x['prove_per_inference_vs_single'] <= 0.25 else 'no'} |")
        lines.append(f"| batch-{x['batch']} verifyProof gas per inference ÷ single | "
                     f"{x['verify_gas_per_inference_vs_single']:.3f} | <= 0.125 | "
                     f"{'yes' if x['verify_gas_per_inference_vs_single'] <= 0.125 else 'no'} |")
    for k, v in r["ratios"]["gas_hashed_vs_public"].items():
        lines.append(f"| hashed ÷ public mint gas ({k}) | {v['mint']:.3f} | <= 0.6 (784-input MLP) | "
                     f"{'yes' if v['mint'] <= 0.6 else 'no'} |")
    for x in r["runs"]:
        if x["visibility"] == "hashed" and x["batch"] == 1:
            lines.append(f"| one hashed-input mint ({x['model']}, {x['target']}) | {x['mint_gas']:,} | "
                         f"<= 750,000 | {'yes' if x['mint_gas'] <= 750_000 else 'no'} |")
    return lines


def plots(r: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["runs"] + [b for b in r["batch"] if b not in r["runs"]]
    files = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in r["models"]:
        xs = [x for x in rows if x["model"] == name]
        ax.scatter([x["logrows"] for x in xs], [x["prove_s"]["median"] for x in xs], label=f"{name} (proofmint)")
        bare = r["baselines"][name]["bare_ezkl"]
        ax.scatter([bare["logrows"]], [bare["times"]["prove"]["median"]], marker="x", label=f"{name} (bare ezkl)")
    ax.set(xlabel="logrows", ylabel="prove time (s, median)", title="Prove time vs circuit size")
    ax.legend(fontsize=7)
    files.append(_save(fig, out / "prove_time_vs_logrows.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([x["instances"] for x in rows], [x["verify_gas"] for x in rows], label="verifyProof")
    ax.scatter([x["instances"] for x in rows], [x["mint_gas"] for x in rows], marker="s", label="mint (all tokens)")
    ax.set(xlabel="public instances", ylabel="gas", title="Gas vs number of public instances")
    ax.legend(fontsize=7)
    files.append(_save(fig, out / "gas_vs_instances.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for target in r["config"]["targets"]:
        xs = [x for x in r["runs"] if x["target"] == target and x["argmax_agreement"] is not None]
        ax.scatter([x["prove_s"]["median"] for x in xs], [x["argmax_agreement"] for x in xs], label=target)
    bares = [b for b in r["baselines"].values() if b["bare_ezkl"]["argmax_agreement"] is not None]
    ax.scatter([b["bare_ezkl"]["times"]["prove"]["median"] for b in bares],
               [b["bare_ezkl"]["argmax_agreement"] for b in bares], marker="x", label="bare ezkl resources")
    ax.set(xlabel="prove time (s, median)", ylabel="argmax agreement (held-out)",
           title="Accuracy vs prove time per calibration target")
    ax.legend(fontsize=7)
    files.append(_save(fig, out / "accuracy_vs_prove_time.png"))
    return files


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
