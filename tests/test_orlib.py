"""The engine reproduces published OR-Library optima (real HiGHS and CBC, no mocks).

The data is read from ``shared/benchmarks/orlib`` next to the repository;
the whole module is skipped when that folder is absent.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optimizer
from optimizer import engine, evaluate, orlib
from optimizer.engine import LevelSolver, SolveResult, solve_level
from optimizer.instance import Instance
from optimizer.solve import SolverOptions

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "orlib"
if not ROOT.is_dir():
    pytest.skip(f"OR-Library data not found at {ROOT}", allow_module_level=True)

PMED_TOLERANCE = 0.5  # published p-median optima are integers
CAP_TOLERANCE = 0.005  # cap optima are printed to 3 decimals
TIME_LIMIT = 120.0


def solve(
    instance: Instance, level: int | None, absolute: float, solver: str = "highs"
) -> SolveResult:
    """Solve with a gap that proves the OR-Library objective within ``absolute``."""
    gap = orlib.gap_for(instance, absolute)
    options = SolverOptions(solver=solver, time_limit=TIME_LIMIT, gap=gap)
    return solve_level(instance, level, options)


def check_engine_result(result: SolveResult, instance: Instance) -> None:
    """The grouping is feasible and the evaluator, re-run here, agrees on its cost."""
    assert result.status == "optimal"
    assert result.evaluation.feasible, [str(v) for v in result.evaluation.violations]
    again = evaluate(instance, result.groupings, open_sites=result.open_sites)
    assert again.feasible
    assert again.total == pytest.approx(result.objective, rel=1e-12, abs=1e-9)


def served(result: SolveResult, instance: Instance) -> pd.DataFrame:
    """Each body's row and the row of the site serving it."""
    body = instance.bodies.index.get_indexer(pd.Index(result.groupings["body_id"]))
    site = instance.sites.index.get_indexer(pd.Index(result.groupings["site_id"]))
    return pd.DataFrame({"body": body, "site": site})


# --- readers -------------------------------------------------------------


def test_pmed1_duplicate_edge_keeps_the_last_line() -> None:
    n, p, edges = orlib.read_pmed_edges(ROOT / "pmed" / "pmed1.txt")
    assert (n, p, len(edges)) == (100, 5, 200)
    pair = {(30, 70), (70, 30)}
    listed = [row[2] for row in edges.tolist() if (int(row[0]), int(row[1])) in pair]
    assert listed == [5.0, 74.0]  # line 117 then line 176
    kept = orlib.last_edges(n, edges)
    assert len(kept) == 198  # pmed1 repeats 2 vertex pairs
    direct = kept[(kept[:, 0] == 29) & (kept[:, 1] == 69)]
    assert direct.tolist() == [[29.0, 69.0, 74.0]]


def test_last_edges_is_the_last_line_whatever_the_direction() -> None:
    edges = np.array([[1, 2, 9], [2, 3, 1], [2, 1, 4], [1, 2, 7], [3, 1, 10]], dtype=float)
    assert orlib.last_edges(3, edges).tolist() == [[0, 1, 7], [0, 2, 10], [1, 2, 1]]
    distances = orlib.shortest_paths(3, edges)
    assert distances[0].tolist() == [0.0, 7.0, 8.0]


def test_disconnected_graph_is_refused() -> None:
    with pytest.raises(ValueError, match="not connected"):
        orlib.shortest_paths(3, np.array([[1, 2, 5.0]]))


def test_read_pmed_builds_a_hosted_p_median_instance() -> None:
    instance, p = orlib.read_pmed(ROOT / "pmed" / "pmed1.txt")
    assert p == 5
    assert instance.distances.shape == (100, 100)
    assert (instance.spend["spend"] == 1e6).all()
    assert (instance.sites["body_id"] == instance.sites.index).all()
    assert np.allclose(instance.distances, instance.distances.T)
    assert (np.diag(instance.distances) == 0).all()
    assert instance.distances[29, 69] <= 74.0


def test_read_pmed_spend_only_moves_the_constant() -> None:
    default, _ = orlib.read_pmed(ROOT / "pmed" / "pmed1.txt")
    small, _ = orlib.read_pmed(ROOT / "pmed" / "pmed1.txt", spend=2.0)
    assert (small.spend["spend"] == 2.0).all()
    assert np.allclose(small.distances * 2.0, default.distances * 1e6)
    with pytest.raises(ValueError):
        orlib.read_pmed(ROOT / "pmed" / "pmed1.txt", spend=0.0)


def test_capa_capacity_placeholder_parses(tmp_path: Path) -> None:
    path = ROOT / "cap" / "capa.txt"
    assert path.read_text(encoding="ascii").split()[2] == "capacity"
    free = orlib.read_cap(path)
    assert (len(free.sites), len(free.bodies)) == (100, 1000)
    assert free.sites["capacity"].isna().all()
    assert free.sites["fixed_cost"].iloc[0] == 2141200.0
    assert (free.sites["body_id"] == "").all()
    capped = orlib.read_cap(path, capacity=8000)
    assert (capped.sites["capacity"] == 8000.0).all()
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1\n capacitee 5.\n 2 3.\n", encoding="ascii")
    with pytest.raises(ValueError):
        orlib.read_cap(bad)


def test_cap_distances_price_the_whole_demand() -> None:
    instance = orlib.read_cap(ROOT / "cap" / "cap71.txt")
    # customer 1: demand 146, cost 6739.725 of allocating all of it to warehouse 1
    assert instance.spend["spend"].iloc[0] == 146.0
    assert instance.distances[0, 0] * 146.0 / 1e6 == pytest.approx(6739.725)
    assert instance.sites.loc["w11", "fixed_cost"] == 0.0


def test_optima_tables() -> None:
    assert orlib.optima("pmed", root=ROOT).loc["pmed40", "optimum"] == 5128
    assert len(orlib.optima("pmed", root=ROOT)) == 40
    assert orlib.optima("uncap", root=ROOT).loc["capa", "optimum"] == pytest.approx(17156454.478)
    assert orlib.optima("pmedcap", root=ROOT).loc["pmedcap1_14", "optimum"] == 982
    assert len(orlib.optima("cap", root=ROOT)) == 49
    with pytest.raises(ValueError):
        orlib.optima("nope", root=ROOT)


# --- published optima -----------------------------------------------------


# pmed25, pmed32 and pmed33 (n = 500-700) broke an earlier engine whose master carried the
# constant spend (total ~1e8): a HiGHS error, a wrong optimality claim, a stall.
@pytest.mark.parametrize("name", ["pmed1", "pmed2", "pmed4", "pmed5", "pmed25", "pmed32", "pmed33"])
def test_pmed_optimum_highs(name: str) -> None:
    instance, p = orlib.read_pmed(ROOT / "pmed" / f"{name}.txt")
    result = solve(instance, p, PMED_TOLERANCE)
    check_engine_result(result, instance)
    assert result.evaluation.level == p
    ours = orlib.orlib_objective(result, instance)
    assert ours == pytest.approx(orlib.optima("pmed", root=ROOT).loc[name, "optimum"], abs=1e-6)
    # independently: every vertex at its nearest open median
    opened = instance.sites.index.get_indexer(pd.Index(result.open_sites))
    assert instance.distances[:, opened].min(axis=1).sum() == pytest.approx(ours, abs=1e-6)


def test_pmed6_is_proven_by_branch_and_cut_without_rens(monkeypatch: pytest.MonkeyPatch) -> None:
    """p = 5 of 200: the LP opens no median outright, so RENS is skipped; branching proves it."""
    instance, p = orlib.read_pmed(ROOT / "pmed" / "pmed6.txt")
    options = SolverOptions(time_limit=TIME_LIMIT, gap=orlib.gap_for(instance, PMED_TOLERANCE))
    solver = LevelSolver(instance, options)
    monkeypatch.setattr(solver, "rens", lambda *args: pytest.fail("RENS ran"))
    result = solver.solve(p)
    check_engine_result(result, instance)
    assert result.status == "optimal" and result.nodes > 1
    assert result.summary()["nodes"] == result.nodes
    assert orlib.orlib_objective(result, instance) == pytest.approx(7824, abs=1e-6)


def test_pmed1_optimum_cbc() -> None:
    instance, p = orlib.read_pmed(ROOT / "pmed" / "pmed1.txt")
    result = solve(instance, p, PMED_TOLERANCE, solver="cbc")
    check_engine_result(result, instance)
    assert result.solver == "cbc"
    assert orlib.orlib_objective(result, instance) == pytest.approx(5819, abs=1e-6)


@pytest.mark.parametrize("name", ["pmedcap1_1", "pmedcap1_2", "pmedcap1_3", "pmedcap1_4"])
def test_pmedcap_listed_value(name: str) -> None:
    instance, p, listed = orlib.read_pmedcap(ROOT / "pmedcap" / f"{name}.txt")
    assert listed == orlib.optima("pmedcap", root=ROOT).loc[name, "optimum"]
    assert (instance.sites["capacity"] == 120.0).all()
    result = solve(instance, p, PMED_TOLERANCE)
    check_engine_result(result, instance)
    assert result.formulation == "compact"
    ours = orlib.orlib_objective(result, instance)
    assert ours == pytest.approx(listed, abs=1e-6)
    # independently: unweighted floor distances, loads within Q, medians serve themselves
    pairs = served(result, instance)
    coords = instance.bodies[["x_km", "y_km"]].to_numpy()
    floor = orlib.floor_distances(coords)
    assert floor[pairs["body"], pairs["site"]].sum() == pytest.approx(listed)
    load = instance.spend_matrix[pairs["body"], 0]
    assert np.bincount(pairs["site"], weights=load).max() <= 120.0
    medians = set(pairs["site"])
    assert len(medians) == p
    assert all(pairs.loc[pairs["body"] == m, "site"].item() == m for m in medians)


@pytest.mark.parametrize("name", ["cap71", "cap101", "cap131", "capa"])
def test_uncapacitated_warehouse_optimum(name: str) -> None:
    instance = orlib.read_cap(ROOT / "cap" / f"{name}.txt")
    result = solve(instance, None, CAP_TOLERANCE)
    check_engine_result(result, instance)
    ours = orlib.orlib_objective(result, instance)
    published = orlib.optima("uncap", root=ROOT)["optimum"].astype(float)[name]
    assert math.isclose(ours, published, abs_tol=0.01)


def test_swaps_widen_only_where_agencies_can_change_band(monkeypatch: pytest.MonkeyPatch) -> None:
    """p-median has one band (the estimates are exact); the toy model has discount bands."""
    widened: list[bool] = []
    real = engine.swap_search

    def spy(*args: object, widen: bool = False, **kwargs: object) -> object:
        widened.append(widen)
        return real(*args, widen=widen, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "swap_search", spy)
    instance, _ = orlib.read_pmed(ROOT / "pmed" / "pmed1.txt")
    for data in (instance, optimizer.load("toy")):
        solver = LevelSolver(data)
        start = solver.cover(3)
        assert start is not None
        solver.polish(start, math.inf)
    assert widened == [False, True]
