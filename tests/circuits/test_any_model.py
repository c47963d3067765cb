"""Models a user brings that the zoo doesn't have: several inputs, old opsets, a witness past the
calibrated tables. Each proves faithfully or is refused in one line; never a wrong success."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import proofmint
from proofmint.circuits.fidelity import acceptable
from proofmint.prover import load_bundle

from ..conftest import run_cli

# Each test compiles (and most prove) a model of its own: slow, though no HEAVY fixture says so.
pytestmark = pytest.mark.slow


class MaxOfTwo(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)

    def forward(self, x, y):
        return self.head(torch.max(x, y))


class AddMM(nn.Module):
    def forward(self, a, b, c):
        return torch.addmm(a, b, c)


def _export(module, args, folder, opset=18):
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module.eval(), args, str(folder / "model.onnx"), dynamo=False, opset_version=opset)
    (folder / "input.json").write_text(json.dumps({"input_data": [a.numpy().ravel().tolist() for a in args]}))
    return folder / "model.onnx", folder / "input.json"


def _proves_what_the_float_model_says(c, net, x, inp, ws, tmp_path):
    """A proof of ``inp`` verifies and its decoded outputs are ``net(x)`` within 1 % of the span."""
    bundle = proofmint.prove(c.circuit_id, input=inp, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    with torch.no_grad():
        want = net(x).numpy().ravel()
    got = np.array(load_bundle(bundle).outputs[0])
    assert np.abs(got - want).max() <= 0.01 * c.package.quantization["output_range"] + 1e-9


@pytest.mark.parametrize("name", ["max(x, y)", "addmm(a, b, c)"])
def test_multi_input_models_prove_faithfully(name, ws, tmp_path):
    torch.manual_seed(0)
    if name == "max(x, y)":
        module, args = MaxOfTwo(), (torch.randn(1, 4), torch.randn(1, 4))
    else:
        module, args = AddMM(), (torch.randn(2, 3), torch.randn(2, 4), torch.randn(4, 3))
    onnx_path, inp = _export(module, args, tmp_path / "m")
    c = proofmint.compile(onnx_path, workspace=ws)
    pkg = c.package
    assert len(pkg.input_names) == len(args) and pkg.input_sizes == [a.numel() for a in args]
    assert pkg.quantization["relative_max_error"] <= 0.01
    bundle = proofmint.prove(c.circuit_id, input=inp, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    b = load_bundle(bundle)
    with torch.no_grad():
        want = module(*args).numpy().ravel()
    assert np.abs(np.array(b.outputs[0]) - want).max() <= 0.01 * pkg.quantization["output_range"] + 1e-9
    # the proven input instances are every input's values, in graph order
    assert b.input == pytest.approx(np.concatenate([a.numpy().ravel() for a in args]).tolist(), abs=1e-6)


def test_an_input_with_too_few_lists_names_the_inputs(ws, tmp_path):
    torch.manual_seed(0)
    onnx_path, inp = _export(MaxOfTwo(), (torch.randn(1, 4), torch.randn(1, 4)), tmp_path / "m")
    c = proofmint.compile(onnx_path, workspace=ws)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"input_data": [[0.1] * 4]}))
    r = run_cli("prove", c.circuit_id, "--input", bad, "--out", tmp_path / "p.json", "-w", ws)
    assert r.returncode == 2 and "2 lists of numbers, one per model input" in r.stderr, r.stderr
    assert not (tmp_path / "p.json").exists()


def test_a_witness_outside_the_calibrated_tables_is_refused_and_writes_no_bundle(ws, tmp_path):
    """Forced past check_range (whose margin keeps this from happening): ezkl would try to
    prove it and hang, or prove a wrong lookup. prove fails with the fix, and no bundle."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    onnx_path, _ = _export(net, (torch.zeros(1, 4),), tmp_path / "m")
    calib = tmp_path / "narrow.json"
    calib.write_text(json.dumps({"input_data": [np.random.default_rng(0).uniform(-0.1, 0.1, 256).tolist()]}))
    c = proofmint.compile(onnx_path, calibration=calib, workspace=ws)
    package = c.package.path / "package.json"
    data = json.loads(package.read_text())
    data["input_range"] = [-100.0, 100.0]  # let the far input through the first check
    package.write_text(json.dumps(data))
    far = tmp_path / "far.json"
    far.write_text(json.dumps({"input_data": [[40.0, -40.0, 40.0, -40.0]]}))
    r = run_cli("prove", c.circuit_id, "--input", far, "--out", tmp_path / "p.json", "-w", ws, "--json")
    assert r.returncode == 1, r.stderr
    failure = json.loads(r.stdout)["failures"][0]["error"]
    assert "outside the circuit's lookup table" in failure and "--calibration" in failure
    assert not (tmp_path / "p.json").exists()


def test_logsoftmax_at_opset_9_proves_faithfully(ws, tmp_path):
    x = torch.from_numpy(np.random.default_rng(1).uniform(-2.8, 2.3, (4, 10)).astype(np.float32))
    onnx_path, inp = _export(nn.LogSoftmax(dim=1), (x,), tmp_path / "m", opset=9)
    c = proofmint.compile(onnx_path.parent, workspace=ws)  # the folder, as a new user hands it over
    assert c.package.quantization["relative_max_error"] <= 0.01
    bundle = proofmint.prove(c.circuit_id, input=inp, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    b = load_bundle(bundle)
    want = torch.log_softmax(x, dim=1).numpy().ravel()
    assert np.abs(np.array(b.outputs[0]) - want).max() <= 0.01 * (want.max() - want.min())


def test_the_decomposition_search_follows_the_rows_not_the_fewest_bits(ws, tmp_path):
    """A Conv-ReLU-Conv-ReLU-Sigmoid net shaped like EZKL's 2l_relu_sigmoid_conv. ezkl's
    calibration picks the scale rebase multiplier the range checks leave room for: the fewest
    bits allow only multiplier 1 and the most rows. The search must walk on to the decomposition
    with the fewest rows, and a proof must still say what the float model says."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 3, 5, padding=2), nn.ReLU(), nn.Conv2d(3, 1, 1), nn.ReLU(),
                        nn.Sigmoid())
    x = torch.rand(1, 3, 8, 8)
    onnx_path, inp = _export(net, (x,), tmp_path / "m")
    c = proofmint.compile(onnx_path, workspace=ws)
    report = c.package.calibration_report
    escaped = 0
    for scale in {p["input_scale"] for p in report.probes}:
        probes = [p for p in report.probes if p["input_scale"] == scale]
        fewest = min(p["num_rows"] for p in probes)
        if all(p["num_rows"] == fewest for p in probes):
            continue  # the decomposition moved nothing at this scale
        escaped += min(p["scale_rebase_multiplier"] for p in probes if p["num_rows"] == fewest) > 1
        finals = [t["num_rows"] for t in report.tried if t["input_scale"] == scale
                  and t["layout"]["num_inner_cols"] == 2 and t["layout"]["decomp_base"] < 16384]
        assert min(finals) <= fewest * 1.15, (scale, probes, finals)  # margin bits, legs
    assert escaped, report.probes  # somewhere a multiplier above 1 had the fewest rows
    # a finer scale that costs no more than the chosen one was measured, and missed the goal
    chosen, tried = report.chosen, {t["label"]: t for t in report.tried}
    for t in tried.values():
        if t["input_scale"] > chosen["input_scale"] and t["predicted_cost"] <= chosen["predicted_cost"]:
            there = [tried[m] for m in report.measured if tried[m]["input_scale"] == t["input_scale"]]
            assert there and not any(acceptable(m["quality"], 0.01) for m in there), t
    assert c.package.quantization["relative_max_error"] <= 0.01
    _proves_what_the_float_model_says(c, net, x, inp, ws, tmp_path)


def test_a_rebase_multiplier_of_two_takes_a_logrow_off_a_small_convnet(ws, tmp_path):
    """A LeNet-shaped net (Conv-ReLU-AvgPool-Conv-ReLU-Gemm on 8x8): dividing every other
    product back to the input scale (multiplier 2) halves the divisions, whose range checks are
    most of its rows, for twice the bits; ezkl's own calibration only offers 1 and 10 (10 needs
    a table as long as the rows saved). The chosen circuit must be multiplier 2's, a logrow below
    the same circuit at multiplier 1, and its proof still say what the float model says."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 10))
    with torch.no_grad():  # trained weights are larger: at the initial ones every value is small
        for p in net.parameters():  # enough for multiplier 10 to fit a short table too
            p.mul_(3)
    x = torch.rand(1, 1, 8, 8)
    onnx_path, inp = _export(net, (x,), tmp_path / "m")
    c = proofmint.compile(onnx_path, workspace=ws)
    chosen = c.package.calibration_report.chosen
    assert chosen["scale_rebase_multiplier"] == 2 and chosen["layout"]["decomp_legs"] == 2, chosen
    from proofmint.circuits.calibrate import circuit_rows  # the same circuit at multiplier 1
    from proofmint.encoding import Visibility
    from proofmint.models.onnx_model import load_onnx

    once = circuit_rows(load_onnx(onnx_path), Visibility(), tmp_path / "once", 1, {
        "input_scale": chosen["input_scale"], "param_scale": chosen["input_scale"],
        "decomp_base": chosen["layout"]["decomp_base"], "decomp_legs": 2, "num_inner_cols": 2,
        "scale_rebase_multiplier": 1, "disable_freivalds": chosen["layout"]["disable_freivalds"]})
    assert chosen["num_rows"] < 0.7 * once and chosen["logrows"] < once.bit_length(), (chosen, once)
    _proves_what_the_float_model_says(c, net, x, inp, ws, tmp_path)


@pytest.mark.parametrize("side, budget, depth", [(8, 600, 1), (24, 20, 2)],
                         ids=["in its child", "in a grandchild"])
def test_a_terminated_compile_leaves_no_ezkl_child_running(side, budget, depth, tmp_path):
    """`kill` on a compile (a CI timeout, a supervisor) must stop the child process that runs
    ezkl's calibrations too: before, it ran on for minutes after its parent was gone. A
    calibration that could take a tenth of the budget runs in a child of that child (here a
    356,544-row circuit, seconds per calibration, and a 20 s budget): those must go as well,
    even inside ezkl. Every process the compile started carries a tag in its environment, so
    none escapes the check by starting after a snapshot."""
    import uuid

    import psutil

    net = nn.Sequential(nn.Conv2d(3, 3, 5, padding=2), nn.ReLU(), nn.Conv2d(3, 1, 1), nn.ReLU(),
                        nn.Sigmoid())
    if side == 24:
        net = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 1, 1), nn.ReLU(),
                            nn.Sigmoid())
    onnx_path, _ = _export(net, (torch.rand(1, 3, side, side),), tmp_path / "m")
    tag = uuid.uuid4().hex
    cli = subprocess.Popen([sys.executable, "-m", "proofmint", "compile", str(onnx_path),
                            "--workspace", str(tmp_path / "ws"), "--budget", str(budget)],
                           stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("w"),
                           env={**os.environ, "PROOFMINT_TEST_TAG": tag})

    def tagged() -> list:
        found = []
        for p in psutil.process_iter():
            try:
                if p.pid != cli.pid and p.environ().get("PROOFMINT_TEST_TAG") == tag:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def depth_of(p) -> int:
        try:
            return 1 + depth_of(p.parent()) if p.ppid() != cli.pid else 1
        except (psutil.NoSuchProcess, AttributeError):
            return 0

    def working() -> list:  # multiprocessing's resource tracker aside
        return [p for p in tagged() if "resource_tracker" not in " ".join(_cmdline(p))]

    deadline = time.monotonic() + 60
    while not any(depth_of(p) >= depth for p in working()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(depth_of(p) >= depth for p in working()), f"no process {depth} level(s) down"
    time.sleep(2)  # into the calibrations: inside ezkl
    cli.terminate()
    # stopped mid-compile, not finished
    assert cli.wait(timeout=30) == 128 + signal.SIGTERM, (tmp_path / "stderr").read_text()[-2000:]
    # each process stops and reaps its children before it exits: none may outlive the command
    # (an orphaned calibration would run to its end, here a second or so)
    time.sleep(0.3)
    assert not working(), [_cmdline(p) for p in working()]
    deadline = time.monotonic() + 10  # a tracker leaves once its process is gone
    while tagged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tagged(), [_cmdline(p) for p in tagged()]


def _cmdline(p) -> list[str]:
    import psutil

    try:
        return p.cmdline()
    except psutil.Error:
        return []


def test_the_search_stops_at_its_budget_even_inside_a_calibration(tmp_path):
    """The budget bounds a single calibration too (EZKL's mnist_gan: 170 s for one): one that
    could take a real share of what is left runs in a child stopped at the budget's end, and
    with nothing calibrated compile says so and what to pass, in one line."""
    torch.manual_seed(0)
    onnx_path, _ = _export(nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 10)),
                           (torch.rand(1, 48),), tmp_path / "m")
    ws = tmp_path / "ws"
    started = time.monotonic()
    r = run_cli("compile", onnx_path, "--workspace", ws, "--budget", "0.05")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "spent its 0.05 s budget before any circuit was calibrated" in r.stderr, r.stderr
    assert "last: stopped after" in r.stderr, r.stderr  # stopped mid-calibration, in a child
    assert "--budget 600" in r.stderr and time.monotonic() - started < 120
    assert not list(ws.glob("circuits/*/package.json"))
    assert run_cli("compile", onnx_path, "--workspace", ws, "--budget", "0").returncode == 2


def test_a_circuit_too_big_for_the_machine_is_refused_before_any_calibration(tmp_path):
    """EZKL's mnist_gan makes 23.5 million rows: a proving key of about 128 GiB. Compiling it
    calibrated for tens of minutes towards a setup that could never run; the rows come from
    one gen_settings, so the decision comes in seconds: cut into segments whose keys fit, or,
    where no cut makes them small enough, refused in one line, leaving no circuit. The
    machine's memory is set so low here that a small model can't be cut small enough."""
    torch.manual_seed(0)
    onnx_path, _ = _export(nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 10)),
                           (torch.rand(1, 48),), tmp_path / "m")
    ws = tmp_path / "ws"
    r = run_cli("compile", onnx_path, "--workspace", ws, env={"PROOFMINT_MEMORY": "4M"})
    assert r.returncode == 2, r.stderr
    error = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "can't be cut into any number of segments whose keys each fit 1.6 MiB" in error[0], error
    assert "--max-key" in error[0], error
    assert "calibrate" not in r.stderr  # refused before the search spent anything
    assert not list(ws.glob("circuits/*/package.json"))
    bad = run_cli("compile", onnx_path, "--workspace", ws, env={"PROOFMINT_MEMORY": "lots"})
    assert bad.returncode == 2 and "not an amount of memory" in bad.stderr, bad.stderr
    # --segments 1: one circuit or nothing, refused in one line with the way on
    one = run_cli("compile", onnx_path, "--workspace", ws, "--segments", "1", "--max-key", "1M")
    assert one.returncode == 2 and "Traceback" not in one.stderr, one.stderr
    assert "over the 1 MiB budget — leave out --segments 1 to prove it as linked segments" in one.stderr, one.stderr
    # half its 4,452 rows at ezkl's default layout's columns: logrows 12, a 17.3 MiB key — the flat
    # 4 KB a row this check used (16 MiB) let it through to a search whose circuit needs 16.6 MiB
    sized = run_cli("compile", onnx_path, "--workspace", ws, "--max-key", str(2**24), "--segments", "1",
                    env={"PROOFMINT_MEMORY": "32M"})
    assert sized.returncode == 2 and "Traceback" not in sized.stderr, sized.stderr
    # a budget a prover of that key could not run in here is said, not refused (it may prove elsewhere)
    assert "--max-key 16 MiB is over 40 % of the 32 MiB of memory to plan for" in sized.stderr, sized.stderr
    assert "one circuit of 4,452 rows needs a proving key of about 17.3 MiB, over the 16 MiB budget" \
        in sized.stderr, sized.stderr
    assert "calibrate" not in sized.stderr and not list(ws.glob("circuits/*/package.json"))
    # a model compile rewrites (a strided transposed conv) is named as the user's file, not the rewritten copy
    gen, _ = _export(nn.Sequential(nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1), nn.ReLU()),
                     (torch.rand(1, 2, 6, 6),), tmp_path / "gen")
    r = run_cli("compile", gen.parent, "--workspace", ws, env={"PROOFMINT_MEMORY": "4M"})
    assert r.returncode == 2 and "rewrote ConvTranspose" in r.stderr, r.stderr
    assert "error: model.onnx can't be cut" in r.stderr and "rewritten" not in r.stderr.split("error:")[1], r.stderr
    assert "calibrate" not in one.stderr and not list(ws.glob("circuits/*/package.json"))


def test_scales_between_two_of_one_cost_and_the_finest_are_not_fitted(ws, tmp_path):
    """A 48-64-10 MLP needs logrows 12 at every scale (2,750-3,542 rows): once scales 5 and 7
    cost the same, the finest (13) is fitted next, and costing the same too it is the choice;
    scales 9 and 11 could only tie, so fitting them (a third of the search on the MNIST MLP)
    is skipped. The proof still says what the float model says."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 10))
    x = torch.rand(1, 48)
    onnx_path, inp = _export(net, (x,), tmp_path / "m")
    c = proofmint.compile(onnx_path, workspace=ws)
    report = c.package.calibration_report
    fitted = {t["input_scale"] for t in report.tried + report.probes}
    assert report.chosen["input_scale"] == 13 and fitted == {5, 7, 13}, report.tried
    assert {t["predicted_cost"] for t in report.tried} == {report.chosen["predicted_cost"]}
    assert report.measured == [report.chosen["label"]]
    _proves_what_the_float_model_says(c, net, x, inp, ws, tmp_path)


def test_a_model_that_has_run_calibrates_in_a_child_process(ws, tmp_path):
    """A slow calibration runs in a child process, after the search has run the float model
    (measuring, checking a rewrite): the model must cross the process boundary without the
    engine it loaded, and the child's candidate come back whole."""
    from proofmint import ezkl_layer
    from proofmint.circuits.candidate import make_candidate
    from proofmint.encoding import Visibility
    from proofmint.jobs import run_in_child
    from proofmint.models.onnx_model import load_onnx

    torch.manual_seed(0)
    onnx_path, _ = _export(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)),
                           (torch.rand(1, 8),), tmp_path / "m")
    model = load_onnx(onnx_path)
    x = np.random.default_rng(0).random((4, 8))
    want = model.run(x[0])[0]  # loads onnxruntime's session into the model
    calibration = ezkl_layer.write_input(tmp_path / "calibration.json", x)
    cand = run_in_child(make_candidate, "child", model, calibration, Visibility("public", "public", "fixed"),
                        "resources", [7], tmp_path / "work", what="calibration")
    assert cand.compiled_path.is_file() and cand.settings["run_args"]["input_scale"] == 7
    assert np.array_equal(model.run(x[0])[0], want)
