"""The one runner of the toolchain's Node scripts (solc's front end, ipfs.mjs, merkle.mjs): its
output, and a failure as one line saying what failed and the script's own reason."""

from __future__ import annotations

import json

import pytest

from proofmint.errors import ToolchainError
from proofmint.verifier import toolchain


def test_a_script_answers_on_stdout(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"proofmint")
    (line,) = toolchain.run_script("ipfs.mjs", "cid", str(f), what="the IPFS importer").splitlines()
    assert json.loads(line)["cid"].startswith("bafkrei")


@pytest.mark.parametrize("script,args,stdin,why", [
    # an uncaught error: Node prints the source line before it and its own version after it
    ("solc-json.js", ["/no/such/solc"], b"{}", "Error: Cannot find module '/no/such/solc'"),
    # a script that reports its own error
    ("merkle.mjs", ["/no/such/manifest.json"], None, "ENOENT: no such file or directory"),
])
def test_a_failing_script_is_one_toolchain_line_with_its_reason(script, args, stdin, why):
    with pytest.raises(ToolchainError) as failed:
        toolchain.run_script(script, *args, stdin=stdin, what=f"running {script}", hint="run `make setup`")
    message = str(failed.value)
    assert message.startswith(f"running {script} failed: ") and why in message, message
    assert message.endswith(" — run `make setup`") and "\n" not in message and "Node.js v" not in message
