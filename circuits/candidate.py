"""A candidate circuit: one choice of scale, decomposition and layout, calibrated and compiled,
with the cost model that ranks candidates without proving anything."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from proofmint import ezkl_layer
from proofmint.encoding import Visibility
from proofmint.models.onnx_model import OnnxModel


class Cost(NamedTuple):
    """Predicted proving cost: cells (2^logrows x columns) first, then rows."""

    cells: int
    rows: int


def columns(settings: dict, logrows: int | None = None) -> int:
    """The columns that set a circuit's proving time at ``logrows`` (default: the settings'),
    as :class:`Cost` ranks candidates: each inner column with one argument per table (every
    lookup and range check), two more, and the tables' own (one longer than 2^logrows is split
    over several). Its proving key holds more columns than these: :func:`key_bytes`."""
    ra = settings["run_args"]
    n = 2 ** (logrows or ra["logrows"])
    lo, hi = ra["lookup_range"]
    tables = [b - a + 1 for a, b in settings.get("required_range_checks", [])]
    tables += [hi - lo + 1] * len(settings.get("required_lookups", []))
    return ra["num_inner_cols"] * (1 + len(tables)) + 2 + sum(math.ceil(t / n) for t in tables)


def _chunks(lo: int, hi: int, n: int) -> int:
    """Columns ezkl 23.0.5's table.rs splits a table spanning [lo, hi] over at 2^logrows = n
    (its columns hold n less the blinding rows: 16 kept here)."""
    return (hi - lo) // max(n - 16, n // 2, 1) + 1


def key_bytes(settings: dict, rows: int | None = None) -> int:
    """The proving key ezkl's setup writes for a circuit of ``settings`` (its calibrated
    layout), estimated before any setup; ``rows``: sized at the power of two above that many
    rows instead of the settings' logrows — ezkl's defaults, before any calibration (the
    circuit the search then chooses is sized again from its own settings).

    halo2's proving key holds, for each fixed and permutation column, its values and
    coefficients (32 B a row each) and its coset on the extended domain (32 B x ext a row),
    plus three ext-sized polynomials (l0, l_last, l_active); ext is the constraint system's
    degree less one, rounded up to a power of two: 4 (degree 5: a lookup's selector x input,
    inside logUp), 8 (6-9: Poseidon's x^5, Freivalds', shuffles, dynamic lookups, more than two
    inner columns batched in one lookup, a table split over 2-5 columns) or 16 (over more than
    5: ezkl multiplies the lookup by a selector polynomial of the parts' count). Of 193 keys
    ezkl 23.0.5 wrote here (tests/circuits/keys.json: synthetic layers, EZKL's examples, the
    suite's circuits, the zoo GPT's segments; logrows 7-19, 1-4 inner columns), 174 are
    (2 + ext) x 32 x columns + 3 x 32 x ext bytes a row for a whole number of columns (the rest,
    at logrows 7-13, carry more besides). The columns are counted from the settings below, one
    more than the most any op mix took; the estimate is 1.6-17.3 % over every key measured (the
    0.31-1.46x of the previous fit: shuffles, split tables, a lookup's output column and more
    than two inner columns were not counted)."""
    ra = settings["run_args"]
    ranges = settings.get("required_range_checks", [])
    logrows = max(rows, 1).bit_length() if rows is not None else ra["logrows"]
    n, inner = 2 ** logrows, ra["num_inner_cols"]
    vis = json.dumps([ra.get("input_visibility"), ra.get("output_visibility"), ra.get("param_visibility")])
    hashed, commits = "Hashed" in vis, vis.count("KZGCommit")
    freivalds = settings.get("einsum_params", {}).get("total_einsum_col_size", 0) > 0
    shuffles = settings.get("num_shuffles", 0) > 0
    dynamic = (math.ceil(settings.get("total_dynamic_col_size", 0) / n)
               if settings.get("num_dynamic_lookups", 0) else 0)
    lookups = len(settings.get("required_lookups", []))
    # Before a calibration the tables are placeholders (ezkl's default lookup range, a 16,384-wide
    # decomposition), which the search narrows to fit the rows: one column each. After it, each
    # is split as ezkl splits it. One input column is shared by every lookup table.
    whole = rows is not None
    checks = [1 if whole else _chunks(a, b, n) for a, b in ranges]
    table = (1 if whole else _chunks(*ra["lookup_range"], n)) if lookups else 0
    cols = (inner * (5 + len(checks) + lookups)  # advice, a selector per table argument
            + 4 + sum(checks) + table * (lookups + 1)  # instance, constants; the tables' own
            + (10 + (inner > 2)) * hashed + commits + (8 * inner + 4) * freivalds + 5 * shuffles
            + (inner + 3) * dynamic + 1)
    degree = max(9 if hashed or freivalds or shuffles or dynamic or inner > 2 else 5,
                 table + 4, *(c + 4 for c in checks))
    ext = 1 << (degree - 2).bit_length()
    # selectors are stored a bit a row each, with the commitments: within cols / 8 bytes a row
    return n * (32 * ((2 + ext) * cols + 3 * ext) + cols // 8) + 2**16


@dataclass
class Candidate:
    label: str
    settings: dict
    settings_path: Path
    compiled_path: Path
    quality: dict | None = None
    overrides: dict = field(default_factory=dict)
    keys: Path | None = None  # vk.key + pk.key from timing a proof, and the SRS they were made with
    keys_srs: str | None = None

    @property
    def logrows(self) -> int:
        return self.settings["run_args"]["logrows"]

    @property
    def scale(self) -> int:
        return self.settings["run_args"]["input_scale"]

    @property
    def rebase(self) -> int:
        """ezkl's scale_rebase_multiplier: how far a scale may grow before it is divided back.
        It moves values, so candidates share a fidelity measurement only when it matches."""
        return self.settings["run_args"].get("scale_rebase_multiplier", 1)

    def same_values(self, other: "Candidate") -> bool:
        """Whether ``other`` computes the same fixed-point values (only layout or range checks
        differ), so one fidelity measurement holds for both."""
        ra, rb = self.settings["run_args"], other.settings["run_args"]
        return (self.scale, ra["param_scale"], self.rebase) == (other.scale, rb["param_scale"], other.rebase)

    @property
    def cost(self) -> Cost:
        """Predicted proving cost: 2^logrows x columns dominates, rows break ties.

        ezkl repeats every lookup and range-check argument in each inner column, so an inner
        column costs one advice column plus one argument per kind of table. That is why twice
        the inner columns at one logrow fewer proves in about the same time (17 such pairs
        timed on 2 cores: 0.78-1.54x, median 1.05x), not in half. Tables count too: one
        longer than 2^logrows is split over several columns, which is how a circuit one logrow
        smaller can prove slower (EZKL's 2l_relu_sigmoid_conv at logrows 14 vs 15)."""
        return Cost(2 ** self.logrows * columns(self.settings), self.settings["num_rows"])

    @property
    def key_bytes(self) -> int:
        return key_bytes(self.settings)

    @property
    def lookup_rows(self) -> int:
        """Rows of each lookup table (0 without lookups): they span ``lookup_range``."""
        lo, hi = self.settings["run_args"]["lookup_range"]
        return hi - lo + 1 if self.settings.get("required_lookups") else 0

    @property
    def layout(self) -> dict:
        ra = self.settings["run_args"]
        return {"num_inner_cols": ra["num_inner_cols"],
                "disable_freivalds": bool(ra.get("disable_freivalds", False)),
                "decomp_base": ra["decomp_base"], "decomp_legs": ra["decomp_legs"]}

    @property
    def freivalds_columns(self) -> int:
        return self.settings.get("einsum_params", {}).get("total_einsum_col_size", 0)

    def summary(self) -> dict:
        return {"label": self.label, "logrows": self.logrows, "num_rows": self.settings["num_rows"],
                "predicted_cost": self.cost[0],
                "input_scale": self.scale, "param_scale": self.settings["run_args"]["param_scale"],
                "scale_rebase_multiplier": self.rebase,
                "lookup_range": self.settings["run_args"]["lookup_range"],
                "layout": self.layout | {"freivalds_columns": self.freivalds_columns},
                "quality": self.quality}


def run_args(visibility: Visibility, model: OnnxModel, batch: int = 1, layout: dict | None = None):
    variables = [(model.batch_axis, batch)] if model.batch_axis else None
    return ezkl_layer.run_args(**visibility.run_args(), variables=variables, layout=layout)


def make_candidate(label: str, model: OnnxModel, calibration: Path, visibility: Visibility,
                   target: str, scales: list[int] | None, work: Path, batch: int = 1,
                   layout: dict | None = None, multipliers: list[int] | None = None) -> Candidate:
    """gen_settings + calibrate_settings + compile_circuit for one choice of scales and layout.
    ``model`` is the graph ezkl compiles (for a fixed-batch model batched side by side, the
    N-copy graph); ``multipliers`` default to ezkl's own."""
    d = work / label
    d.mkdir(parents=True, exist_ok=True)
    settings_path, compiled = d / "settings.json", d / "model.compiled"
    ezkl_layer.gen_settings(model.path, settings_path, run_args(visibility, model, batch, layout))
    ezkl_layer.calibrate_settings(calibration, model.path, settings_path, target, scales, multipliers)
    _in_canonical_order(settings_path)
    ezkl_layer.compile_circuit(model.path, compiled, settings_path)
    return Candidate(label, json.loads(settings_path.read_text()), settings_path, compiled,
                     overrides=dict(layout or {}))


def _in_canonical_order(settings_path: Path) -> None:
    """ezkl lists a circuit's range checks and lookups in a hash set's order, which differs
    from run to run ([[-1, 1], [0, 511]], then [[0, 511], [-1, 1]]): the same model compiled
    twice got two circuit ids. Sorted, one circuit has one id (and one verifying key)."""
    settings = json.loads(settings_path.read_text())
    for k in ("required_range_checks", "required_lookups"):
        if isinstance(settings.get(k), list):
            settings[k] = sorted(settings[k], key=lambda v: json.dumps(v, sort_keys=True))
    settings_path.write_text(json.dumps(settings))


def decomposition(bits: int, legs: int) -> dict:
    legs = max(1, legs)
    return {"decomp_base": 2 ** math.ceil(bits / legs), "decomp_legs": legs}


Hint = tuple[int, int, int]  # a fitted scale, its bits and the rebase multiplier they fit


def walk_key(probe: Candidate) -> tuple[int, int, int]:
    """What a wider decomposition must lower for the walk to take it: the logrows its rows
    alone need (256-row tables can get there), then its own logrows (two legs), then its rows.
    Fewer rows alone is not enough: EZKL's 1l_gelu_tanh_appx at scale 5 takes 407 rows at 12
    bits (logrows 9) and 339 at 20 (multiplier 2, but a 2^10-row table: logrows 11)."""
    rows = probe.settings["num_rows"]
    return rows.bit_length(), probe.logrows, rows
