"""The public surface: names exported by the package, each CLI verb's twin, the tool report."""

import inspect
import json
import os
from pathlib import Path

import proofmint
from proofmint.cli import app

from .conftest import run_cli

VERBS = {  # CLI command -> its Python twin at the package root
    "compile": "compile", "prove": "prove", "verify": "verify", "deploy": "deploy", "mint": "mint",
    "show": "show", "verify-asset": "verify_asset", "doctor": "doctor", "demo": "demo", "bench": "bench",
    "models list": "models_list", "models export": "models_export", "chain up": "chain_up",
    "chain down": "chain_down", "chain status": "chain_status", "export-car": "export_car",
    "gateway": "gateway", "serve": "serve", "jobs submit": "jobs_submit", "jobs status": "jobs_status",
    "jobs wait": "jobs_wait",
}


def test_public_names_do_not_change_by_accident():
    assert proofmint.__all__ == sorted(proofmint.__all__)
    assert set(proofmint.__all__) == {
        "AssetVerdict", "BenchResult", "CarExport", "ChainStatus", "CircuitPackage", "CompileResult",
        "DemoResult", "DeployResult", "ExportResult", "JobView", "License", "InstanceLayout", "MintResult", "ProofBundle", "ProofmintError",
        "ProveResult", "TokenView", "Tool", "VerifyResult", "Visibility", "ZooModel",
        *VERBS.values(),
    }
    for name in proofmint.__all__:
        assert getattr(proofmint, name) is not None


def _cli_commands() -> set[str]:
    names = {c.name for c in app.registered_commands}
    for group in app.registered_groups:
        names |= {f"{group.name} {c.name}" for c in group.typer_instance.registered_commands}
    return names


def test_every_cli_verb_has_a_keyword_only_twin_with_its_options():
    assert _cli_commands() == set(VERBS)
    for verb, name in VERBS.items():
        params = list(inspect.signature(getattr(proofmint, name)).parameters.values())
        # after the first (the command's argument), every parameter is keyword-only
        assert all(p.kind is p.KEYWORD_ONLY for p in params[1:]), name


def test_results_are_typed_not_bare_dicts():
    for name in VERBS.values():
        ret = inspect.signature(getattr(proofmint, name)).return_annotation
        assert not str(ret).startswith("dict"), (name, ret)


def test_doctor_only_looks(tmp_path):
    """A diagnostic writes nothing: run with an empty HOME, it reports the solc adapter missing."""
    r = run_cli("doctor", "--json", env={"HOME": str(tmp_path)})
    tools = {t["name"]: t for t in json.loads(r.stdout)["tools"]}
    assert "not installed yet" in tools["ezkl solc adapter"]["version"]
    assert list(Path(tmp_path).iterdir()) == []


def test_an_internal_error_has_its_own_exit_code(tmp_path):
    """A bug (not a user error) exits 70 with one line saying how to report it, never 1 (a
    failed check) or 2 (a usage error); PROOFMINT_DEBUG=1 shows its traceback."""
    import subprocess
    import sys

    bug = ("import sys, proofmint.cli, proofmint.verifier.local as local\n"
           "def broken(path): raise KeyError('a bug')\n"
           "local.load_any = broken\n"
           "sys.argv = ['proofmint', 'verify', 'p.json']\n"
           "proofmint.cli.main()\n")
    for debug, code in (("", 70), ("1", 1)):
        r = subprocess.run([sys.executable, "-c", bug], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PROOFMINT_DEBUG": debug})
        assert r.returncode == code, r.stderr
        assert ("Traceback" in r.stderr) == bool(debug)
    assert "internal error" in r.stderr or "KeyError" in r.stderr


def test_doctor_finds_every_tool():
    r = run_cli("doctor", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    tools = {t["name"]: t for t in json.loads(r.stdout)["tools"]}
    assert tools["ezkl"]["version"] == "23.0.5"
    assert tools["anvil"]["version"].startswith("anvil Version: 1.7.1")
    assert all(t["problem"] is None for t in tools.values())


def test_every_command_has_help_with_an_example():
    for cmd in ("compile", "prove", "verify", "deploy", "mint", "show", "verify-asset"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "Example" in r.stdout, cmd


def test_help_shows_the_defaults_it_names():
    """rich reads "[default: ...]" in an option's help as markup and drops it: --srs's said
    "SRS file (e.g. from a ceremony) ." with no word of the development SRS being NOT secure."""
    wide = {"COLUMNS": "400"}
    compile_help = run_cli("compile", "--help", env=wide).stdout
    assert "[default: a cached development SRS, NOT secure]" in compile_help
    assert "[default: 40 % of the memory to plan for" in compile_help
    assert "[default: all cores divided among the workers]" in run_cli("prove", "--help", env=wide).stdout
    assert "[default: the signer]" in run_cli("mint", "--help", env=wide).stdout


def test_a_script_without_a_main_guard_can_call_the_api(zoo, tmp_path):
    """ezkl runs in spawned children, which re-run the caller's script first: an unguarded
    script would compile again inside its own child and wait for ever on its own lock."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text("import proofmint\n"
                      f"r = proofmint.compile({zoo['mlp'].onnx!r}, workspace={str(tmp_path / 'ws')!r})\n"
                      "print('compiled', r.circuit_id)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.count("compiled") == 1, r.stderr[-2000:]
