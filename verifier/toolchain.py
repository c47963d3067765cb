"""The EVM toolchain proofmint installs for itself (npm, project-local) and how to call it.

- solc 0.8.20 (npm ``solc-ezkl``): what ezkl's verifier path pins; ezkl looks for it at
  ``~/.svm/0.8.20/solc-0.8.20`` (svm's layout), where proofmint writes a small adapter.
- solc 0.8.37 (npm ``solc``): our own contracts (OpenZeppelin 5 needs ^0.8.24).
- anvil (npm ``@foundry-rs/anvil``) and ``@openzeppelin/contracts``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from proofmint import config, ezkl_layer
from proofmint.errors import ToolchainError

EZKL_SOLC = "0.8.20"
SOLC_VERSION_LINE = f"Version: {EZKL_SOLC}+commit.a1b79de6.Linux.g++"
ADAPTER_MARK = "# proofmint solc adapter"


def toolchain_dir() -> Path:
    return config.toolchain_dir()


def node() -> str:
    exe = shutil.which("node")
    if not exe:
        raise ToolchainError("node is not installed — install Node.js (>= 18), then `make setup`")
    return exe


def run_script(script: str, *args: str, stdin: bytes | None = None, cwd: Path | None = None, what: str,
               hint: str = "") -> str:
    """Run one of the toolchain's Node scripts (``solc-json.js``, ``ipfs.mjs``, ``merkle.mjs``);
    returns its stdout. A failure is a :class:`ToolchainError` saying ``what`` failed, the
    script's own error line, and ``hint``."""
    proc = subprocess.run([node(), str(toolchain_dir() / script), *args], input=stdin, capture_output=True,
                          cwd=cwd)
    if proc.returncode != 0:
        raise ToolchainError(f"{what} failed: {_error_line(proc.stderr.decode(errors='replace'))}"
                             + (f" — {hint}" if hint else ""))
    return proc.stdout.decode()


def _error_line(stderr: str) -> str:
    """The line of a Node script's stderr that says what went wrong: an uncaught error's
    ``Error: ...`` line (Node prints the source line before it and its version after), else
    the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[A-Za-z]*(Error|Exception)\b", ln)]
    return (named or lines or ["no output"])[0 if named else -1][:400]


def _module(rel: str) -> Path:
    p = toolchain_dir() / "node_modules" / rel
    if not p.exists():
        raise ToolchainError(f"{p} is missing — run `make setup` (npm ci in {toolchain_dir()})")
    return p


def anvil_path() -> Path:
    return _module("@foundry-rs/anvil-linux-amd64/bin/anvil")


def solc_package(version: str) -> Path:
    return _module("solc-ezkl" if version == EZKL_SOLC else "solc")


def compile_standard_json(sources: dict[str, str], version: str, via_ir: bool = False) -> dict:
    """Compile Solidity sources with a pinned solcjs; returns the standard-JSON output."""
    request = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": 1},
            "viaIR": via_ir,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    out = json.loads(run_script("solc-json.js", str(solc_package(version)), stdin=json.dumps(request).encode(),
                                cwd=toolchain_dir(), what=f"solc {version}"))  # imports resolve from there
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ToolchainError("solc: " + errors[0].get("formattedMessage", str(errors[0])))
    return out


def _adapter_target() -> Path:
    return Path.home() / ".svm" / EZKL_SOLC / f"solc-{EZKL_SOLC}"


def _adapter_script() -> str:
    return f"""#!/usr/bin/env bash
{ADAPTER_MARK}: answers like solc {EZKL_SOLC}, compiles standard JSON with npm solc {EZKL_SOLC}.
if [ "${{1:-}}" = "--version" ]; then echo "solc, the solidity compiler commandline interface"; echo "{SOLC_VERSION_LINE}"; exit 0; fi
exec "{node()}" "{toolchain_dir() / 'solc-json.js'}" "{solc_package(EZKL_SOLC)}"
"""


def ensure_ezkl_solc() -> Path:
    """Write the svm-path adapter ezkl expects, if it isn't there (never overwrites a real solc)."""
    target, script = _adapter_target(), _adapter_script()
    if target.exists() and ADAPTER_MARK not in target.read_text(errors="ignore"):
        return target  # a real solc someone installed: leave it alone
    if not target.exists() or target.read_text() != script:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        os.replace(tmp, target)
    return target


def _adapter_state() -> tuple[Path, str]:
    """What ezkl will find at svm's path, without writing anything (doctor only looks)."""
    target = _adapter_target()
    if not target.exists():
        return target, "not installed yet: `proofmint deploy` writes it on first use"
    text = target.read_text(errors="ignore")
    if ADAPTER_MARK not in text:
        return target, "a real solc (left alone)"
    return target, SOLC_VERSION_LINE if text == _adapter_script() else "stale: `proofmint deploy` rewrites it"


@dataclass
class Tool:
    name: str
    version: str | None
    path: str | None
    problem: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def doctor() -> list[Tool]:
    """Every tool proofmint needs, its version and path, and what is missing. Reads only."""
    tools: list[Tool] = []

    def probe(name: str, fn):
        try:
            path, version = fn()
            tools.append(Tool(name, version, str(path)))
        except ToolchainError as exc:
            tools.append(Tool(name, None, None, str(exc)))

    def package_version(p: Path) -> str:
        return json.loads((p / "package.json").read_text())["version"]

    probe("ezkl", lambda: (ezkl_layer.library() or "python package", ezkl_layer.version()))
    probe("node", lambda: (node(), subprocess.run([node(), "--version"], capture_output=True,
                                                   text=True).stdout.strip()))
    probe(f"solc {EZKL_SOLC} (ezkl verifiers)", lambda: (solc_package(EZKL_SOLC), package_version(solc_package(EZKL_SOLC))))
    probe("solc (contracts)", lambda: (solc_package("latest"), package_version(solc_package("latest"))))
    probe("anvil", lambda: (anvil_path(), subprocess.run([str(anvil_path()), "--version"],
                            capture_output=True, text=True).stdout.splitlines()[0]))
    probe("openzeppelin", lambda: (_module("@openzeppelin/contracts"),
                                   package_version(_module("@openzeppelin/contracts"))))
    probe("ezkl solc adapter", _adapter_state)
    return tools
