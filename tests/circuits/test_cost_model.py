"""The settings search's cost prediction, on settings shaped like ezkl's (no proving)."""

from pathlib import Path

from proofmint.circuits.calibrate import Candidate


def _candidate(logrows: int, cols: int, lookup_range=(0, 0), lookups=(), range_checks=()) -> Candidate:
    settings = {"run_args": {"logrows": logrows, "num_inner_cols": cols, "decomp_base": 256,
                             "decomp_legs": 2, "lookup_range": list(lookup_range)},
                "num_rows": 2 ** (logrows - 1), "required_lookups": list(lookups),
                "required_range_checks": [list(r) for r in range_checks]}
    return Candidate(f"k{logrows}", settings, Path("s.json"), Path("m.compiled"))


def test_a_table_longer_than_the_rows_costs_its_extra_columns():
    """A logrow fewer saves less when the sigmoid table then spans four columns: the two end
    within 2x, a close call that the search settles by timing one proof of each (EZKL's
    2l_relu_sigmoid_conv: the logrows-14 layout proved in 8.3 s, the logrows-15 one in 6.3 s)."""
    table = (-2 ** 15, 2 ** 15 - 1)  # 65,536 entries
    small = _candidate(14, 4, table, ["Sigmoid"])
    big = _candidate(15, 2, table, ["Sigmoid"])
    assert small.cost[0] == 2 ** 14 * (4 + 2 + 4)
    assert big.cost[0] == 2 ** 15 * (2 + 2 + 2)
    assert big.cost[0] / small.cost[0] < 2.0  # CLOSE_CALL: both get timed


def test_range_check_tables_count_like_lookups():
    plain = _candidate(10, 2)
    checked = _candidate(10, 2, range_checks=[(0, 4095)])
    assert checked.cost[0] == plain.cost[0] + 4 * 2 ** 10
