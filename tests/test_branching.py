"""Branch and Benders cut: the search on a knapsack, solved by HiGHS's LP at every node."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from optimizer.branching import BranchAndCut
from optimizer.formulation import MatrixModel, Rows
from optimizer.solve import HighsBackend, Outcome, Proof, SolverOptions, clock
from tests.knapsack import knapsack


@dataclass(frozen=True)
class Pack:
    """A grouping stand-in: the search only reads ``cost``."""

    cost: float
    items: tuple[int, ...]


def _relaxed_search(
    model: MatrixModel, value: np.ndarray, gap: float, cut_row0: int
) -> tuple[BranchAndCut, HighsBackend]:
    """A search over the items of a knapsack model's LP (no cuts); a node keeps its whole items."""
    lp = HighsBackend(model, SolverOptions(gap=0.0))
    lp.relax(True)

    def group(values: np.ndarray, exact: bool) -> Pack:
        taken = np.flatnonzero(values > 1.0 - 1e-9)  # drop the fractional items: still fits
        return Pack(float(-value[taken].sum()), tuple(taken.tolist()))

    def no_cuts(values: np.ndarray) -> tuple[Rows, int]:
        return Rows(), 0

    n = len(value)
    proof = Proof(gap, floor=-float(value.sum()))  # no pack is worth more than every item
    return BranchAndCut(lp, np.arange(n), no_cuts, group, proof, cut_row0, 10**9), lp


def _search(gap: float = 0.0) -> tuple[BranchAndCut, HighsBackend, np.ndarray, float]:
    """The knapsack's LP, a search over its items, their values, and HiGHS's own MIP optimum."""
    model, _, value = knapsack()
    optimum = HighsBackend(model, SolverOptions(gap=0.0)).solve(None).objective
    search, lp = _relaxed_search(model, value, gap, 1)
    return search, lp, value, optimum


def test_the_search_proves_the_optimum_that_highs_mip_finds() -> None:
    search, lp, value, optimum = _search()
    found = search.run(None, -math.inf, math.inf)
    assert found.best is not None and found.best.cost == pytest.approx(optimum)
    assert found.bound == pytest.approx(optimum)
    assert -value[list(found.best.items)].sum() == pytest.approx(found.best.cost)
    assert found.nodes > 1 and found.lps >= found.nodes - 1  # the LP is fractional: it branched
    lo, hi = lp.col_bounds(np.arange(len(value)))
    assert (lo == 0).all() and (hi == 1).all()  # the branching bounds are undone


def test_a_gap_stops_the_search_with_an_honest_bound() -> None:
    search, _, _, optimum = _search(gap=0.05)
    found = search.run(None, -math.inf, math.inf)
    assert found.best is not None and found.bound <= optimum + 1e-9
    floor = search.proof.floor
    assert found.best.cost - found.bound <= 0.05 * (found.best.cost - floor) + 1e-9
    exact, _, _, _ = _search()
    assert found.nodes < exact.run(None, -math.inf, math.inf).nodes


def test_a_passed_deadline_leaves_the_start_and_its_bound() -> None:
    search, _, _, _ = _search()
    start = Pack(-1.0, ())
    found = search.run(start, -500.0, clock() - 1.0)
    assert found.nodes == 0 and found.best is start and found.bound == -500.0


def test_branching_follows_the_pseudo_costs_once_both_sides_are_known() -> None:
    search, _, value, _ = _search()
    point = np.full(len(value), 0.5)
    free = np.ones(len(value), dtype=bool)
    point[3] = 0.4  # the most fractional is a tie; 0.4 is not among it
    assert search._pick(point, free) != 3
    search.gain[:, 3] = [10.0, 10.0]  # column 3 raised the LP most, down and up
    search.seen[:, 3] = [1, 1]
    search.gain[:, 5] = [1.0, 1.0]
    search.seen[:, 5] = [1, 1]
    assert search._pick(point, free) == 3


def _multi_knapsack_search() -> tuple[BranchAndCut, HighsBackend]:
    """20 items, 5 capacity rows: a search whose node LPs take several pivots each."""
    rng = np.random.default_rng(0)
    weight = rng.integers(5, 30, (5, 20)).astype(float)
    value = weight.mean(axis=0) + rng.integers(0, 10, 20)
    model = MatrixModel(
        -value,
        np.zeros(20),
        np.ones(20),
        np.ones(20, dtype=bool),
        sp.csr_matrix(weight),
        np.full(5, -np.inf),
        weight.sum(axis=1) / 3,
    )
    return _relaxed_search(model, value, 0.0, 5)


def _pivots(search: BranchAndCut, lp: HighsBackend) -> tuple[int, float]:
    """Run the search; the simplex iterations of its LPs in all, and the bound it proves."""
    pivots, solve = [0], lp.solve

    def counted(time_limit: float | None) -> Outcome:
        out = solve(time_limit)
        pivots[0] += lp.h.getInfo().simplex_iteration_count
        return out

    lp.solve = counted  # type: ignore[method-assign,assignment]
    found = search.run(None, -math.inf, math.inf)
    return pivots[0], found.bound


def test_a_node_starts_from_its_parents_basis() -> None:
    """On 139 nodes: 349 pivots, against 576 from whatever basis the last node left."""
    search, lp = _multi_knapsack_search()
    pivots, bound = _pivots(search, lp)
    search, lp = _multi_knapsack_search()
    lp.restore = lambda snapshot: None  # type: ignore[method-assign]
    cold, same = _pivots(search, lp)
    assert bound == pytest.approx(same)
    assert pivots < 0.8 * cold
