"""Every bad request is a 4xx with the CLI's one-line message: hand-made bad requests, then
schemathesis fuzzing the node's own OpenAPI document (valid and invalid requests alike)."""

from __future__ import annotations

import http.client
import json
from collections import Counter

import pytest

from ...conftest import run_cli, tiny_inputs
from .conftest import Serve, copy_workspace
from .test_node import request

FUZZ_REQUESTS = 1_000


@pytest.fixture(scope="module")
def api_node(deployed_tiny, tmp_path_factory):
    """A node on its own copy of the deployed workspace; a short queue bounds the proving the
    fuzzer's valid jobs cause (the rest are answered 429)."""
    root = tmp_path_factory.mktemp("api")
    node = Serve(copy_workspace(deployed_tiny, root / "ws"), root / "serve.log", "--max-queue", "4").start()
    yield node
    node.stop()


def _chunked(node: Serve, chunks: int, size: int) -> tuple[int, dict]:
    """POST a body in ``chunks`` chunks of ``size`` bytes (Transfer-Encoding: chunked, no length)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    conn.putrequest("POST", "/api/jobs")
    for k, v in (("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"),
                 ("Authorization", f"Bearer {node.token}")):
        conn.putheader(k, v)
    conn.endheaders()
    try:
        for _ in range(chunks):
            conn.send(f"{size:x}\r\n".encode() + b" " * size + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered and closed before the whole body went out
    r = conn.getresponse()
    status, body = r.status, json.loads(r.read())
    conn.close()
    return status, body


def test_bad_input_values_and_bodies_are_400_413_with_one_line_messages(api_node, tiny_circuit):
    node, circuit = api_node, tiny_circuit.circuit_id
    good = tiny_inputs(1, seed=900)[0]
    cases = {
        "string": ([*good[:5], "0.5"], 400, "holds something other than numbers (a string at position 5)"),
        "nested list": ([*good[:5], [0.5]], 400, "(a nested list at position 5)"),
        "boolean": ([*good[:5], True], 400, "(a boolean at position 5)"),
        "null": ([*good[:5], None], 400, "(null at position 5)"),
        "huge integer": ([*good[:5], 10**400], 400, "too large for a float"),
        "ezkl document with a boolean": ({"input_data": [[*good[:5], False]]}, 400, "(a boolean at position 5)"),
    }
    for name, (values, expected, message) in cases.items():
        status, _, r = request(f"{node.url}/api/jobs", {"circuit": circuit, "inputs": [values]}, node.token)
        assert status == expected and message in r["error"] and "\n" not in r["error"], (name, status, r)
    for raw in ('{"circuit": "' + circuit + '", "inputs": [[1, ]]}', '{\n "inputs": [[1,\n 2,,]]}'):
        status, _, r = request(f"{node.url}/api/jobs", raw=raw.encode(), token=node.token)
        with pytest.raises(json.JSONDecodeError) as where:  # Python's own reading of the body
            json.loads(raw)
        e = where.value
        assert status == 400 and r["error"].endswith(f"not JSON: line {e.lineno} column {e.colno}: {e.msg}"), r
    assert (e.lineno, e.colno) == (3, 4)
    for bad in ("../../../etc", "*" * 10, "0x" + "ab" * 8):
        status, _, r = request(f"{node.url}/api/jobs", {"circuit": bad, "inputs": [good]}, node.token)
        assert status == 400 and "is not a circuit id" in r["error"], (bad, status, r)
    status, r = _chunked(node, chunks=5, size=1 << 20)  # 5 MiB, no Content-Length
    assert status == 413 and "over 4194304 bytes" in r["error"], (status, r)
    status, r = _chunked(node, chunks=1, size=1 << 10)  # a small chunked body is read as usual
    assert status == 400 and "not JSON" in r["error"], (status, r)
    status, _, r = request(f"{node.url}/api/jobs", {"circuit": circuit, "inputs": [good]}, node.token)
    assert status == 202, r


def test_the_cli_shows_the_nodes_one_line_message(api_node, tiny_circuit, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps([*tiny_inputs(1, seed=901)[0][:5], "x"]) + "\n")
    r = run_cli("jobs", "submit", tiny_circuit.circuit_id, "--input", bad, "--node", api_node.url,
                "--workspace", api_node.ws)
    assert r.returncode == 2 and "the node answered 400: input 0 holds something other than numbers" in r.stderr
    assert "Traceback" not in r.stderr and "500" not in r.stderr


def test_explorer_addresses_that_name_nothing_are_html_4xx(api_node):
    for path, expected in (("/tokens/-1", (400, 404)), ("/tokens/99", (404,)), ("/models/0x1234", (400, 404)),
                           ("/models/nothex", (400, 404)), ("/models/0x" + "ab" * 32, (404,))):
        status, headers, r = request(api_node.url + path)
        assert status in expected and "text/html" in headers["Content-Type"], (path, status, r)


def test_fuzzing_the_openapi_document_finds_no_5xx(api_node, tiny_circuit):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from hypothesis import strategies as st
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{api_node.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/jobs", "GET /api/jobs/{job_id}", "GET /api/health"}
    statuses: Counter = Counter()
    server_errors: list = []

    def with_circuit(case, real: bool, authorized: bool, inputs: list | None):
        """Half the jobs name the real circuit, so the input checks behind it are reached too;
        some of those carry inputs of the circuit's shape, so some are accepted (or 429)."""
        if real and isinstance(case.body, dict):
            case.body["circuit"] = tiny_circuit.circuit_id
            if inputs is not None:
                case.body["inputs"] = inputs
        return case, authorized

    shaped = st.none() | st.lists(st.lists(st.floats(-1, 1), min_size=6, max_size=6), min_size=1, max_size=2)

    for op in operations:
        for mode in GenerationMode:
            examples = 400 if op.label == "POST /api/jobs" else 150

            @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(st.tuples(op.as_strategy(generation_mode=mode), st.booleans(), st.booleans(), shaped))
            def call(drawn):
                case, authorized = with_circuit(*drawn)
                headers = {"Authorization": f"Bearer {api_node.token}"} if authorized else {}
                response = case.call(base_url=api_node.url, headers=headers, timeout=60)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append((op.label, mode.value, case.body, response.status_code,
                                          response.text[:300]))

            try:
                call()
            except Unsatisfiable:  # no parameters, or only free strings: it has no invalid form
                assert mode is GenerationMode.NEGATIVE and op.label != "POST /api/jobs", op.label
    sent = sum(statuses.values())
    print(f"\nfuzzed {sent} requests over {len(operations)} operations: {dict(sorted(statuses.items()))}")
    assert server_errors == []
    assert sent >= FUZZ_REQUESTS
