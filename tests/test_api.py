"""The public surface: names exported by the package, and the tool report."""

import json

import proofmint

from .conftest import run_cli


def test_public_names_do_not_change_by_accident():
    assert proofmint.__all__ == sorted(proofmint.__all__)
    assert set(proofmint.__all__) == {
        "CircuitPackage", "CompileResult", "ProofBundle", "ProofmintError", "ProveResult",
        "VerifyResult", "compile", "prove", "verify",
    }


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
