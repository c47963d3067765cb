"""The settings search's cost prediction, on settings shaped like ezkl's (no proving)."""

from pathlib import Path

from proofmint.circuits.candidate import Candidate
from proofmint.circuits.search import CLOSE_CALL
from proofmint.circuits.walk import fastest_beyond_noise


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
    assert small.cost[0] == 2 ** 14 * (4 * 2 + 2 + 4)
    assert big.cost[0] == 2 ** 15 * (2 * 2 + 2 + 2)
    assert big.cost[0] / small.cost[0] < CLOSE_CALL  # both get timed


def test_twice_the_inner_columns_for_a_logrow_less_is_a_close_call():
    """Every lookup argument is repeated per inner column: with three kinds of table, doubling
    the columns to drop a logrow saves little by prediction, and nothing as measured (median
    1.05x the narrow layout's time), which is why the search doesn't try wider layouts."""
    kinds = dict(lookup_range=(-512, 511), lookups=["ReLU"], range_checks=[(0, 255), (-1, 1)])
    wide, tall = _candidate(13, 4, **kinds), _candidate(14, 2, **kinds)
    assert 1 / CLOSE_CALL < wide.cost[0] / tall.cost[0] < 1.0


def test_range_check_tables_count_like_lookups():
    plain = _candidate(10, 2)
    checked = _candidate(10, 2, range_checks=[(0, 4095)])
    assert checked.cost[0] == plain.cost[0] + (2 + 4) * 2 ** 10


def test_a_timed_finalist_wins_only_beyond_the_timing_noise():
    """Equal-cost candidates of one model timed 8.05-8.93 s: a single proof's noise must not
    swap the search's sized decomposition for ezkl's default."""
    sized, default = _candidate(15, 2), _candidate(15, 2)
    assert fastest_beyond_noise([(8.9, sized), (8.1, default)]) is sized
    assert fastest_beyond_noise([(8.9, sized), (0.8 * 8.9, default)]) is default
    assert fastest_beyond_noise([(2.0, sized), (3.0, default)]) is sized
