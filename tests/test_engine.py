"""The MIP engine on small instances whose answers are known, and its CLI."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import optimizer
from optimizer import engine
from optimizer.curve import solve_one, status_quo
from optimizer.engine import (
    NEIGHBOURHOOD_TIME,
    RESCUE_GAP,
    STABILITY,
    LevelSolver,
    SolveResult,
    _deadline,
    _round,
    _split,
    _start_vector,
    solve_level,
)
from optimizer.errors import DataValidationError, InfeasibleError
from optimizer.evaluate import evaluate
from optimizer.formulation import MatrixModel, Rows, never_open, separate
from optimizer.results import read_groupings
from optimizer.schema import load_model
from optimizer.solve import DEFAULT_TIME_LIMIT, HighsBackend, SolverOptions, clock
from optimizer.synthetic import write_dataset
from tests.conftest import CliRunner
from tests.knapsack import knapsack
from tests.synthetic import write_synthetic

EXACT = SolverOptions(gap=1e-9)


def spy(
    monkeypatch: pytest.MonkeyPatch, solver: LevelSolver, name: str, note: Callable[..., object]
) -> None:
    """Wrap ``solver.<name>`` so that ``note`` sees the arguments of every call first."""
    real = getattr(solver, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        note(*args, **kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(solver, name, wrapped)


@pytest.fixture(scope="module")
def toy() -> optimizer.Instance:
    return optimizer.load("toy")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> optimizer.Instance:
    folder = write_synthetic(tmp_path_factory.mktemp("synthetic"))
    return optimizer.load_instance(folder, load_model(folder / "model.toml"))


def test_toy_level_three_is_the_hand_worked_grouping(toy: optimizer.Instance) -> None:
    # tests/test_evaluate.py costs a2, a4, s1 by hand at GBP 467,146; a4 must stay open
    # (its care has no other site within 12 km) and Southland needs an agency of its own.
    result = solve_level(toy, 3, EXACT)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(467146.0)
    assert result.bound == pytest.approx(467146.0)
    assert result.open_sites == ["a2", "a4", "s1"]


def test_toy_best_level_chooses_three_agencies(toy: optimizer.Instance) -> None:
    result = solve_level(toy, None, EXACT)
    assert result.level == 3
    assert result.objective == pytest.approx(467146.0)


def test_toy_status_quo_level(toy: optimizer.Instance) -> None:
    assert solve_level(toy, 6, EXACT).objective == pytest.approx(506000.0)


@pytest.mark.parametrize(
    ("level", "cause"),
    [
        (1, "smaller than the 2 nations"),
        (2, "the fewest that can is 3"),
        (7, "larger than the 6 sites"),
    ],
)
def test_infeasible_levels_name_their_cause(
    toy: optimizer.Instance, level: int, cause: str
) -> None:
    with pytest.raises(InfeasibleError, match=cause):
        solve_level(toy, level)


def test_closing_a_site_its_host_needs_is_infeasible(toy: optimizer.Instance) -> None:
    # a4's care can go nowhere else within 12 km, so site a4 cannot be closed.
    with pytest.raises(InfeasibleError, match="a4"):
        solve_level(toy, 4, keep_closed=["a4"])


def test_keep_open_and_closed_are_honoured(toy: optimizer.Instance) -> None:
    forced = solve_level(toy, 4, EXACT, keep_open=["a1"], keep_closed=["a2"])
    assert "a1" in forced.open_sites and "a2" not in forced.open_sites
    free = solve_level(toy, 4, EXACT)
    assert forced.objective >= free.objective - 1e-6


def test_unknown_keep_open_id_is_bad_input(toy: optimizer.Instance) -> None:
    with pytest.raises(DataValidationError, match="unknown site id 'zz'"):
        solve_level(toy, 3, keep_open=["zz"])


def test_cbc_agrees_with_highs(synthetic: optimizer.Instance) -> None:
    for level in (12, 6):
        highs = solve_level(synthetic, level, EXACT)
        cbc = solve_level(synthetic, level, SolverOptions(solver="cbc", gap=1e-9))
        assert cbc.status == "optimal"
        assert cbc.objective == pytest.approx(highs.objective, rel=1e-9)


def test_every_result_re_evaluates_to_its_objective(synthetic: optimizer.Instance) -> None:
    for level in (25, 10, 6, None):
        result = solve_level(synthetic, level, EXACT)
        check = evaluate(synthetic, result.groupings, open_sites=result.open_sites)
        assert check.feasible
        assert check.total == pytest.approx(result.objective, rel=1e-9)
        assert result.bound <= result.objective * (1 + 1e-9)


def test_rens_finds_the_grouping_an_integral_lp_points_to(synthetic: optimizer.Instance) -> None:
    solver = LevelSolver(synthetic, EXACT)
    optimum = solver.solve(10).objective
    assert solver.last_lp is not None
    y = solver.last_lp[1][: solver.st.n_sites]
    assert np.all((y < 1e-9) | (y > 1 - 1e-9))  # the LP alone decides every site here
    poor = solver.cover(10)
    assert poor is not None and poor.cost > optimum * (1 + 1e-6)
    found, searched = solver.rens(poor, -math.inf, None, {"iterations": 0, "cuts": 0})
    assert found.cost == pytest.approx(optimum, rel=1e-9)
    assert searched  # its MIP proved the neighbourhood's best: RENS again would find no more
    assert set(found.open_sites) == set(np.flatnonzero(y > 0.5))


def _optimum_and_cover(synthetic: optimizer.Instance) -> tuple[LevelSolver, Any, Any]:
    """A solver (gap 1e-4) that solved level 10, its grouping there, and the cover (2e-4 above)."""
    solver = LevelSolver(synthetic, SolverOptions(gap=1e-4))
    solver.solve(10)
    optimum, poor = solver.solved[10], solver.cover(10)
    assert poor is not None and poor.cost > optimum.cost * (1 + 2e-4)
    return solver, optimum, poor


def _point(solver: LevelSolver, grouping: Any) -> np.ndarray:
    """A grouping as a master point (its columns, theta at its costs)."""
    return _start_vector(solver.st, solver.lists, solver.assigner, grouping)


def test_rens_leaves_a_grouping_within_a_tenth_over_the_gap_to_branch_and_cut(
    synthetic: optimizer.Instance,
) -> None:
    """With the bound 1.05 gaps below the optimum, RENS's MIP stops at the optimum."""
    solver, optimum, poor = _optimum_and_cover(synthetic)
    bound = optimum.cost - 1.05 * solver.proof.allowance(optimum.cost)
    assert solver._rens_pays(poor.cost, bound) and not solver._rens_pays(optimum.cost, bound)
    said: list[tuple[bool, bool]] = []
    real = solver.master.solve

    def solve(*args: Any) -> Any:
        watch = args[4]  # what the MIP is shown: the start first, then the optimum
        said.append((watch(_point(solver, poor)), watch(_point(solver, optimum))))
        return real(*args)

    solver.master.solve = solve
    found, _ = solver.rens(poor, bound, None, {"iterations": 0, "cuts": 0})
    assert found.cost == pytest.approx(optimum.cost, rel=1e-9)
    assert said == [(False, True)]  # no better than the start; within 1.1 gaps: stop


def test_a_mip_point_that_beats_the_best_is_improved_by_swaps(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To the first local optimum; past it (every swap tried) only if that is near enough."""
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(10)
    poor = solver.cover(10)
    assert poor is not None
    point = _point(solver, poor)
    calls: list[bool] = []  # each swap search's ``widen``
    real = engine.swap_search

    def search(*args: Any, widen: bool = False, **kwargs: Any) -> Any:
        calls.append(widen)
        return real(*args, widen=widen, **kwargs)

    monkeypatch.setattr(engine, "swap_search", search)
    swapped = solver._swapped(point, None, math.inf, -math.inf, -math.inf)
    assert swapped is not None and swapped is not solver.polished  # other swaps may help
    assert swapped.cost < poor.cost and calls == [False]
    again = solver._swapped(point, None, math.inf, -math.inf, math.inf)
    assert again is not None and again.cost <= swapped.cost and calls == [False, False, True]
    assert again is solver.polished
    assert solver._swapped(point, swapped, math.inf, -math.inf, math.inf) is None  # not better
    shut = point.copy()
    shut[: solver.st.n_sites + solver.st.n_copies] = 0.0  # nothing open: no grouping
    assert solver._swapped(shut, None, math.inf, -math.inf, math.inf) is None


def test_what_swaps_make_of_a_mip_point_is_kept_when_the_mip_ends_elsewhere(
    synthetic: optimizer.Instance,
) -> None:
    """The MIP may open only the cover's sites; the optimum it was shown still comes out."""
    solver, optimum, poor = _optimum_and_cover(synthetic)
    sites = np.arange(solver.st.n_sites)
    shut = poor.mask(solver.st.n_sites).astype(float)
    solver.master.set_col_bounds(sites, shut, shut)
    solver.master.relax(False)
    real = solver.master.solve

    def solve(*args: Any) -> Any:
        args[4](_point(solver, optimum))
        return real(*args)

    solver.master.solve = solve
    found, *_ = solver._mip_rounds(
        poor, optimum.cost * (1 - 1.05e-4), None, time.perf_counter(), {"iterations": 0, "cuts": 0}
    )
    assert found is not None and found.cost == pytest.approx(optimum.cost, rel=1e-9)


def test_the_master_starts_priced_at_every_site_open(synthetic: optimizer.Instance) -> None:
    solver = LevelSolver(synthetic, EXACT)
    master = solver._master()
    st = solver.st
    everyone = solver.assigner.assign(~never_open(st))
    assert everyone is not None
    point = _start_vector(st, solver.lists, solver.assigner, everyone)
    cols = np.arange(st.n_sites + st.n_copies)
    master.set_col_bounds(cols, point[cols], point[cols])
    master.relax(True)
    out = master.solve(None)  # sites and bands fixed there: only the seeded cuts price it
    assert out.status == "optimal"
    assert out.objective == pytest.approx(everyone.cost, rel=1e-9)


def test_the_covering_rows_are_each_bodys_smallest_site_sets(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", 120, seed=3)  # radii from 70 to 200 km
    solver = LevelSolver(optimizer.load(data, data / "model.toml"), EXACT)
    st = solver.st
    reach = [
        set(st.copy_site[st.lst_copy[st.ptr[i] : st.ptr[i + 1]]])
        | set(st.copy_site[st.host_copy[st.host_ptr[i] : st.host_ptr[i + 1]]])
        for i in range(st.n_clients)
    ]
    matrix = solver._coverage()
    ends = matrix.indptr
    rows = [set(matrix.indices[ends[r] : ends[r + 1]]) for r in range(matrix.shape[0])]
    assert all(row in reach for row in rows)
    assert all(any(row <= sites for row in rows) for sites in reach)  # covering the rows covers all
    assert len(rows) < len({frozenset(sites) for sites in reach})
    every = Rows()
    for sites in reach:
        every.add(np.array(sorted(sites)), np.ones(len(sites)), 1.0, np.inf)
    full = every.csr(st.n_sites)
    model = MatrixModel(
        np.ones(st.n_sites),
        st.must_open.astype(float),
        np.where(never_open(st), 0.0, 1.0),
        np.ones(st.n_sites, dtype=bool),
        full,
        np.ones(full.shape[0]),
        np.full(full.shape[0], np.inf),
    )
    fewest = HighsBackend(model, SolverOptions(gap=0.0)).solve(None).objective
    assert solver.smallest_level() == round(fewest)


def test_a_level_with_a_covering_grouping_needs_no_set_cover(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    covers: list[int] = []

    def note(level: int, *args: Any) -> None:
        if len(args) < 2:  # the plain covering MIP, not the LP's rounding
            covers.append(level)

    spy(monkeypatch, solver, "cover", note)
    result = solver.solve(10)
    assert result.status == "optimal"
    assert solver.fewest is None  # level 10's covering grouping proved it feasible
    assert covers == [10]  # and started its LP rounds: the covering MIP ran once
    assert solver.covered is None
    solver.solve(9)  # a level after the first: the set cover, once for every level
    assert covers == [10]
    assert solver.fewest is not None


def test_an_integral_lp_is_rounded_without_the_covering_mip(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    optimum = solver.solve(10)
    assert solver.last_lp is not None
    point = solver.last_lp[1]
    y = point[: solver.st.n_sites]
    covers: list[int] = []
    spy(monkeypatch, solver, "cover", lambda *a, **k: covers.append(1))
    rounded = solver.round_lp(point, 10)
    assert rounded is not None and not covers
    assert set(rounded.open_sites) == set(np.flatnonzero(y > 0.5))
    assert rounded.cost == pytest.approx(optimum.objective, rel=1e-9)
    fractional = point.copy()
    fractional[np.flatnonzero(y > 0.5)[0]] = 0.5  # no longer integral: the MIP rounds it
    assert solver.round_lp(fractional, 10) is not None and covers == [1]


def test_only_a_level_without_a_start_rounds_the_lp(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    calls: list[int] = []
    spy(monkeypatch, solver, "round_lp", lambda *a, **k: calls.append(1))
    first = solver.solve(9)
    assert calls == [1]
    start = solver.cover(8)
    assert start is not None
    second = solver.solve(8, start)
    assert calls == [1] and second.status == "optimal"
    assert first.status == "optimal"


def test_a_start_rens_leaves_far_from_the_bound_gives_way_to_the_lps_rounding(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    optimum = LevelSolver(synthetic, EXACT).solve(10).objective
    solver = LevelSolver(synthetic, EXACT)
    poor = solver.cover(10)
    assert poor is not None and poor.cost > optimum * (1 + 2 * RESCUE_GAP)
    monkeypatch.setattr(solver, "rens", lambda best, *a: (best, True))  # RENS finds nothing
    monkeypatch.setattr(solver, "polish", lambda best, *a: best)  # nor do swaps
    handed: list[float] = []
    spy(monkeypatch, solver, "_exact", lambda level, best, *a: handed.append(best.cost))
    result = solver.solve(10, poor)
    assert handed == [pytest.approx(optimum, rel=1e-9)]  # the rounding, not the poor start
    assert result.status == "optimal" and result.objective == pytest.approx(optimum, rel=1e-9)


def test_branch_and_cut_rounds_a_node_point_where_its_w_sends_each_client(
    synthetic: optimizer.Instance,
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    optimum = solver.solve(15).objective
    assert solver.last_lp is not None
    point = solver.last_lp[1]
    y, _, _ = _split(solver.st, point)
    assert ((y > 1e-6) & (y < 1 - 1e-6)).any()  # a fractional point, as at a node
    greedy = solver.assigner.assign(_round(solver.st, y, 15))
    assert greedy is not None and greedy.cost > optimum * (1 + 1e-3)
    rounded = solver._grouping(point, False, 15)
    assert rounded is not None and rounded.cost <= optimum * (1 + 1e-4)
    assert set(rounded.open_sites) == set(greedy.open_sites)  # the same sites, better assigned


def test_whole_body_rule_uses_one_agency_per_body(synthetic: optimizer.Instance) -> None:
    model = synthetic.model.with_scenario(split_categories=False)
    whole = synthetic.with_model(model)
    result = solve_level(whole, 6, EXACT)
    assert result.formulation == "compact"
    assert result.groupings.groupby("body_id")["site_id"].nunique().max() == 1
    split = solve_level(synthetic, 6, EXACT)
    assert result.objective >= split.objective - 1e-6


def test_a_time_limited_run_is_never_called_optimal_without_proof(
    synthetic: optimizer.Instance,
) -> None:
    result = solve_level(synthetic, 8, SolverOptions(time_limit=0.05, gap=1e-12))
    assert result.status in ("optimal", "time_limit")
    if result.status == "optimal":
        assert result.gap <= 1e-12
    else:
        assert math.isfinite(result.objective)


def test_solve_cli_writes_groupings_and_summary(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "level-3"
    code, stdout, stderr = cli("solve", "--data", "toy", "--level", "3", "--out", out)
    assert code == 0, stderr
    assert stdout.lstrip().startswith("Level 3: optimal")  # no solver banner above it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["objective"] == pytest.approx(467146.0)
    assert summary["breakdown"]["total"] == pytest.approx(467146.0)
    assert set(summary["versions"]) >= {"highspy", "pulp"}
    groupings = read_groupings(out / "groupings.csv")
    assert evaluate(optimizer.load("toy"), groupings).total == pytest.approx(467146.0)
    code, stdout, _ = cli(
        "evaluate", "--data", "toy", "--groupings", out / "groupings.csv", "--json"
    )
    assert code == 0 and json.loads(stdout)["breakdown"]["total"] == pytest.approx(467146.0)


def test_solve_cli_infeasible_exits_3(cli: CliRunner) -> None:
    code, _, stderr = cli("solve", "--data", "toy", "--level", "2")
    assert code == 3
    assert "level 2 is too few" in stderr
    assert "Traceback" not in stderr


def test_solve_cli_bad_level_exits_2(cli: CliRunner) -> None:
    code, _, stderr = cli("solve", "--data", "toy", "--level", "many")
    assert code == 2
    assert "(--level) | expected a whole number or 'best', got 'many'" in stderr


def test_write_lp_names_rows_and_columns(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "toy.lp"
    code, _, stderr = cli("solve", "--data", "toy", "--level", "3", "--write-lp", path)
    assert code == 0, stderr
    text = path.read_text()
    assert "Minimize" in text and "y_a4_" in text and "x_a1,care,a2,b0_" in text


def test_unknown_solver_is_bad_input(cli: CliRunner) -> None:
    with pytest.raises(
        DataValidationError, match="expected one of \\['highs', 'cbc'\\], got 'gurobi'"
    ):
        SolverOptions(solver="gurobi")
    code, _, stderr = cli("solve", "--data", "toy", "--level", "3", "--solver", "gurobi")
    assert code == 2 and "(--solver) | expected one of" in stderr


def _dense_lp(
    seed: int,
    n: int,
    upper: float = np.inf,
    integer: int = 0,
    rhs: tuple[float, float] = (1.0, 2.0),
) -> MatrixModel:
    """max ``c x`` (c in [1, 2]) over ``A x <= b`` with a dense random ``A``, ``x`` in [0, upper].

    The first ``integer`` columns are integer; ``b`` is drawn from ``rhs``.
    """
    rng = np.random.default_rng(seed)
    return MatrixModel(
        -rng.uniform(1.0, 2.0, n),
        np.zeros(n),
        np.full(n, upper),
        np.arange(n) < integer,
        sp.csr_matrix(rng.uniform(0.0, 1.0, (n, n))),
        np.full(n, -np.inf),
        rng.uniform(*rhs, n),
    )


def test_a_re_solve_gets_its_own_time_limit() -> None:
    """HiGHS counts an LP's time limit over every run of its object: re-solves must not."""
    n = 400
    model = _dense_lp(3, n)
    solver = HighsBackend(model, SolverOptions())
    began = time.perf_counter()
    assert solver.solve(None).status == "optimal"
    first = time.perf_counter() - began
    assert first > 0.01, "the first solve must take long enough to matter"
    for _ in range(3):  # a cut the last point violates: a few dual simplex iterations each
        point = solver.solve(first / 2)
        assert point.status == "optimal" and point.values is not None
        cut = Rows()
        cut.add(np.arange(n), np.ones(n), -np.inf, 0.9 * float(point.values.sum()))
        solver.add_rows(cut)


def test_a_zero_time_limit_is_zero_not_unlimited() -> None:
    """A phase called with no time left (0) stops at once; HiGHS read 0 as no limit."""
    model = _dense_lp(3, 400)
    assert HighsBackend(model, SolverOptions()).solve(0.0).status == "time_limit"
    assert HighsBackend(model, SolverOptions()).solve(None).status == "optimal"


def _two_column_master(
    first_cut: tuple[list[int], float], second_cut: tuple[list[int], float]
) -> HighsBackend:
    """min -x - 2y over [0, 1]^2, x + y <= 1.5 (model row), then two cuts (columns, upper)."""
    model = MatrixModel(
        np.array([-1.0, -2.0]),
        np.zeros(2),
        np.ones(2),
        np.zeros(2, dtype=bool),
        sp.csr_matrix(np.array([[1.0, 1.0]])),
        np.array([-np.inf]),
        np.array([1.5]),
    )
    solver = HighsBackend(model, SolverOptions())
    cuts = Rows()
    for cols, upper in (first_cut, second_cut):
        cuts.add(np.array(cols), np.ones(len(cols)), -np.inf, upper)
    solver.add_rows(cuts)
    return solver


def test_purge_drops_only_cuts_no_optimal_lp_priced() -> None:
    """Cuts y <= 0.5 (binding) and x + y <= 5 (idle)."""
    solver = _two_column_master(([1], 0.5), ([0, 1], 5.0))
    for _ in range(3):
        assert solver.solve(None).objective == pytest.approx(-2.0)
    assert solver.purge(1, 4) == 0  # idle for only three solves
    solver.solve(None)
    assert solver.purge(1, 4) == 1
    assert solver.h.getNumRow() == 2
    assert solver.solve(None).objective == pytest.approx(-2.0)  # the binding cut stayed


def test_drop_slack_keeps_the_lp_optimum_and_its_basis() -> None:
    """Cuts x + y <= 5 (slack: it goes) and y <= 0.5 (binding: it stays, as does the model row)."""
    solver = _two_column_master(([0, 1], 5.0), ([1], 0.5))
    assert solver.drop_slack(1) == 0  # no LP solved yet: no basis to read
    assert solver.solve(None).objective == pytest.approx(-2.0)
    assert solver.drop_slack(1, beyond=2) == 0  # only two rows from row 1 on
    assert solver.drop_slack(1) == 1  # from row 1 on: the model row stays whatever it is
    assert solver.h.getNumRow() == 2
    assert solver.h.getLp().row_upper_[1] == pytest.approx(0.5)
    again = solver.solve(None)
    assert again.objective == pytest.approx(-2.0)
    assert solver.h.getInfo().simplex_iteration_count == 0  # warm: the basis survived


def test_a_snapshot_restores_its_basis_by_row_id_after_rows_come_and_go() -> None:
    """Cuts x + y <= 5 (slack) and y <= 0.5 (binding); the optimum is x = 1, y = 0.5."""
    solver = _two_column_master(([0, 1], 5.0), ([1], 0.5))
    assert solver.solve(None).objective == pytest.approx(-2.0)
    snapshot = solver.snapshot()
    assert snapshot is not None
    assert solver.drop_slack(1) == 1  # the slack cut goes: the binding one moves up a row
    solver.set_col_bounds(np.array([1]), np.zeros(1), np.zeros(1))  # y = 0: another basis
    assert solver.solve(None).objective == pytest.approx(-1.0)
    solver.set_col_bounds(np.array([1]), np.zeros(1), np.ones(1))
    late = Rows()
    late.add(np.array([0]), np.ones(1), -np.inf, 3.0)  # slack at the optimum
    solver.add_rows(late)
    solver.restore(snapshot)
    assert solver.solve(None).objective == pytest.approx(-2.0)
    assert solver.h.getInfo().simplex_iteration_count == 0  # the binding cut found by its id


def test_a_snapshot_whose_binding_row_was_deleted_still_starts_an_lp() -> None:
    """Both cuts bind at the snapshot (x <= 0.6, y <= 0.5); one goes, the LP still solves."""
    solver = _two_column_master(([0], 0.6), ([1], 0.5))
    assert solver.solve(None).objective == pytest.approx(-1.6)
    snapshot = solver.snapshot()
    solver._delete_rows(np.array([2]))  # a binding row: the basis lacks a basic variable
    solver.restore(snapshot)
    assert solver.solve(None).objective == pytest.approx(-2.5)  # x = 0.5, y = 1
    late = Rows()
    late.add(np.array([0]), np.ones(1), -np.inf, 3.0)
    solver.add_rows(late)
    assert solver.row_ids.tolist() == [0, 1, 3]  # the deleted row's id is not reused


def test_an_lp_after_a_mip_starts_from_the_last_lp_basis() -> None:
    """A MIP leaves no basis; the LP after it must not start cold (cuts added meanwhile)."""
    n = 300
    model = _dense_lp(5, n, upper=1.0, integer=20, rhs=(5.0, 10.0))
    solver = HighsBackend(model, SolverOptions(gap=1e-2))
    solver.relax(True)
    first = solver.solve(None)
    assert first.status == "optimal" and first.values is not None
    cold = solver.h.getInfo().simplex_iteration_count
    assert cold > 50, "the first LP must take enough iterations to tell a cold start"
    solver.relax(False)
    assert solver.solve(None).status == "optimal"
    cut = Rows()  # one cut, idle at the LP point: the kept basis takes it as a basic slack
    cut.add(np.arange(n), np.ones(n), -np.inf, float(first.values.sum()) + 1.0)
    solver.add_rows(cut)
    solver.relax(True)
    again = solver.solve(None)
    assert again.objective == pytest.approx(first.objective, rel=1e-9)
    assert solver.h.getInfo().simplex_iteration_count < cold / 10


def test_a_mip_reports_the_points_it_passed_on_its_way() -> None:
    """A knapsack started from the empty pack: the start and each better pack on the way."""
    model, weight, value = knapsack()
    n = len(weight)
    solver = HighsBackend(model, SolverOptions(gap=0.0), keep_points=True)
    out = solver.solve(None, np.zeros(n))
    assert out.status == "optimal" and out.values is not None
    assert len(out.others) >= 1
    assert not out.others[0].any()  # the start
    packs = [*out.others, out.values]
    saved = [np.array(found.col_value) for found in solver.h.getSavedMipSolutions()]
    assert len(saved) == len(packs)  # every point HiGHS passed, however many its version finds
    assert all(np.array_equal(pack, found) for pack, found in zip(packs, saved, strict=True))
    assert all(weight @ pack <= weight.sum() / 3 + 1e-9 for pack in packs)
    values = [float(-value @ pack) for pack in packs]
    assert values == sorted(values, reverse=True) and values[-2] > values[-1]
    assert HighsBackend(model, SolverOptions(gap=0.0)).solve(None, np.zeros(n)).others == ()


def test_a_mip_stops_at_its_objective_target_and_its_own_gap() -> None:
    """The knapsack above with a constant: the target is on the objective with the constant."""
    model, weight, _ = knapsack(offset=1000.0)
    n = len(weight)
    solver = HighsBackend(model, SolverOptions(gap=0.0))
    best = solver.solve(None, np.zeros(n))
    assert best.status == "optimal" and best.objective < 1000.0
    out = solver.solve(None, np.zeros(n), 1000.5)  # the empty pack, the start, costs 1000
    assert out.status == "target" and out.values is not None and not out.values.any()
    assert out.objective == 1000.0 and out.bound <= best.objective
    again = solver.solve(None, np.zeros(n), 999.5)  # the start is above it, counting the constant
    assert again.status == "optimal" and again.objective == best.objective
    wide = HighsBackend(model, SolverOptions(gap=0.2))
    loose = wide.solve(None, np.zeros(n), share=0.5)
    assert loose.status == "optimal" and loose.bound <= best.objective + 1e-9
    assert wide.h.getOptionValue("mip_rel_gap")[1] == pytest.approx(0.1)
    wide.solve(None, np.zeros(n))
    assert wide.h.getOptionValue("mip_rel_gap")[1] == pytest.approx(0.2)  # the options' gap again
    solver.relax(True)
    assert solver.solve(None, target=1000.5).status == "optimal"  # an LP has no target


def test_a_mip_stops_soon_after_its_watch_says_so() -> None:
    """The knapsack from the empty pack: HiGHS shows each better pack; True stops the search."""
    model, weight, value = knapsack()
    n = len(weight)
    solver = HighsBackend(model, SolverOptions(gap=0.0))
    shown: list[np.ndarray] = []

    def watch(stop: bool) -> Callable[[np.ndarray], bool]:
        return lambda point: shown.append(point) or stop

    best = solver.solve(None, np.zeros(n), watch=watch(False))
    assert best.status == "optimal" and len(shown) >= 2
    assert np.array_equal(shown[-1], best.values)
    shown.clear()
    out = solver.solve(None, np.zeros(n), watch=watch(True))
    assert out.status == "time_limit" and out.values is not None
    assert len(shown) == 1 and np.array_equal(out.values, shown[0])
    assert -value @ out.values > best.objective  # stopped short of the optimum
    assert solver.solve(None, np.zeros(n)).status == "optimal"  # a new HiGHS object, unwatched


def test_runs_asking_for_other_numbers_of_threads_in_one_process_all_solve() -> None:
    """HiGHS sizes one thread scheduler per process: a run asking for another size failed."""
    model, _, _ = knapsack()
    optimum = HighsBackend(model, SolverOptions(gap=0.0)).solve(None).objective
    for threads in (2, 1, 2):
        out = HighsBackend(model, SolverOptions(gap=0.0, threads=threads)).solve(None)
        assert out.status == "optimal" and out.objective == pytest.approx(optimum)


def test_an_lp_after_a_change_of_bounds_only_keeps_its_highs_object() -> None:
    """Branch and cut's nodes change bounds only: HiGHS re-solves in place, its clock offset."""
    model, _, _ = knapsack()
    solver = HighsBackend(model, SolverOptions(gap=0.0))
    solver.relax(True)
    solver.solve(5.0)
    first = solver.h
    solver.set_col_bounds(np.array([0]), np.array([1.0]), np.array([1.0]))
    out = solver.solve(5.0)
    assert solver.h is first and out.status == "optimal" and out.values is not None
    assert out.values[0] == 1.0
    assert 5.0 < solver.h.getOptionValue("time_limit")[1] <= 5.0 + solver.h.getRunTime()
    rows = Rows()
    rows.add(np.array([1]), np.array([1.0]), 1.0, 1.0)
    solver.add_rows(rows)
    out = solver.solve(5.0)
    assert solver.h is not first and out.values is not None and out.values[1] == 1.0
    assert solver.h.getOptionValue("time_limit")[1] == 5.0  # a new object, a new clock


def test_the_master_mip_cuts_at_every_point_it_is_given(synthetic: optimizer.Instance) -> None:
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(10)
    groupings = [solver.cover(10), solver.cover(6)]
    points = []
    for grouping in groupings:
        assert grouping is not None
        point = _start_vector(solver.st, solver.lists, solver.assigner, grouping)
        point[solver.st.n_sites + solver.st.n_copies : solver.lists.pool0] = 0.0  # theta too low
        points.append(point)
    expected = [separate(solver.st, solver.lists, point)[1] for point in points]
    assert min(expected) > 0
    rows, stats = solver.master.h.getNumRow(), {"cuts": 0}
    best, count = solver._take(tuple(points), None, stats)
    assert count == expected[-1]
    assert stats["cuts"] == sum(expected) == solver.master.h.getNumRow() - rows
    assert best is not None
    assert best.cost <= min(g.cost for g in groupings if g is not None) * (1 + 1e-12)


def test_rens_and_swaps_get_a_floor_of_time_within_their_share_of_what_is_left() -> None:
    now = time.perf_counter()
    assert _deadline(None, now) - now >= NEIGHBOURHOOD_TIME  # a fast level still gets the floor
    assert _deadline(None, now - 20.0) - now >= 20.0  # as long as the level took so far
    assert _deadline(30.0, now) - now >= NEIGHBOURHOOD_TIME
    assert _deadline(30.0, now - 28.0) - now <= 0.7 * 2.0 + 0.1  # 2 s left: their share of it


def test_in_out_cuts_are_made_between_two_points_and_kept_where_the_second_breaks_them(
    synthetic: optimizer.Instance,
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(10)
    st, lists = solver.st, solver.lists
    groupings = [solver.cover(10), solver.cover(8)]
    assert groupings[0] is not None and groupings[1] is not None
    centre, other = (_start_vector(st, lists, solver.assigner, g) for g in groupings)
    low = other.copy()
    low[st.n_sites + st.n_copies : lists.pool0] = 0.0  # theta too low: an LP point to cut off
    mixed = 0.5 * centre + 0.5 * low
    rows, count = separate(st, lists, mixed, at=low)
    assert count == len(rows) > 0
    matrix = rows.csr(len(low))
    lo = np.array(rows.lo)
    assert np.all(matrix @ low < lo - 1e-6)  # each kept cut is violated at the LP point
    for point in (centre, other):  # and holds at every grouping, priced at its own cost
        assert np.all(matrix @ point >= lo - 1e-6 * np.maximum(1.0, np.abs(lo)))
    assert separate(st, lists, mixed, at=centre)[1] == 0  # a priced grouping breaks none
    at_low = separate(st, lists, low)[0].csr(len(low))  # the cuts made at the LP point itself
    assert at_low.shape != matrix.shape or (at_low != matrix).nnz > 0


def test_in_out_lp_rounds_end_at_the_bound_of_plain_rounds(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    bounds = []
    for stability in (0.0, STABILITY):  # 0: every round cuts at the LP point itself
        monkeypatch.setattr(engine, "STABILITY", stability)
        solver = LevelSolver(synthetic, EXACT)
        solver._master()
        stats = {"iterations": 0, "cuts": 0, "dropped": 0}
        _, bound = solver._lp_phase(12, None, None, time.perf_counter(), stats)  # no start
        assert solver.last_lp is not None
        assert separate(solver.st, solver.lists, solver.last_lp[1])[1] == 0
        bounds.append(bound)
    assert bounds[1] == pytest.approx(bounds[0], rel=1e-9)


def test_only_a_solvers_first_level_without_a_start_separates_in_out(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    plain: list[bool] = []
    spy(monkeypatch, solver, "_in_out", lambda point, centre: plain.append(centre is None))
    solver.solve(9)
    assert plain and not any(plain)  # about the covering MIP's grouping
    plain.clear()
    start = solver.cover(8)
    assert start is not None
    solver.solve(8, start)
    assert plain and all(plain)  # the downward pass's start: at the LP points only
    plain.clear()
    solver.solve(12)
    assert plain and all(plain)  # no start (nothing solved above it), but the cuts before


def test_a_level_starts_from_the_nearest_level_solved_above_it(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    assert solver.nearby(8) is None  # nothing solved yet
    above = solver.solve(10)
    start = solver.nearby(8)
    assert start is not None and len(start.open_sites) == 8
    assert set(start.open_sites) < set(solver.solved[10].open_sites)  # two sites dropped
    priced = solver.assigner.cost(start.site, start.mask(solver.st.n_sites))
    assert start.cost == pytest.approx(priced, rel=1e-12)
    assert solver.nearby(10 - engine.NEARBY - 1) is None  # too far below
    assert solver.nearby(8, time_limit=0.0) is None  # the walks keep to their time
    handed: list[float] = []
    spy(monkeypatch, solver, "_benders", lambda k, best, *a: handed.append(best.cost))
    below = solver.solve(8)
    assert handed == [pytest.approx(start.cost, rel=1e-12)]
    assert below.status == "optimal" and above.status == "optimal"
    assert below.objective == pytest.approx(LevelSolver(synthetic, EXACT).solve(8).objective)


def test_a_level_also_starts_from_the_nearest_level_solved_below_it(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(8)
    start = solver.nearby(10)
    assert start is not None and len(start.open_sites) == 10
    assert set(solver.solved[8].open_sites) < set(start.open_sites)  # two sites added
    priced = solver.assigner.cost(start.site, start.mask(solver.st.n_sites))
    assert start.cost == pytest.approx(priced, rel=1e-12)
    assert solver.nearby(8 + engine.NEARBY + 1) is None  # too far above
    solver.solve(12)
    both = solver.nearby(10)
    solved = dict(solver.solved)
    sides = []
    for level in (8, 12):
        solver.solved = {level: solved[level]}
        side = solver.nearby(10)
        assert side is not None
        sides.append(side.cost)
    assert both is not None and both.cost == min(sides) and sides[0] != sides[1]
    solver.solved = {8: solved[8]}
    handed: list[float] = []
    spy(monkeypatch, solver, "_benders", lambda k, best, *a: handed.append(best.cost))
    result = solver.solve(10)
    assert handed == [pytest.approx(start.cost, rel=1e-12)]
    assert result.objective == pytest.approx(LevelSolver(synthetic, EXACT).solve(10).objective)


def test_a_groupings_table_gives_back_the_grouping_it_came_from(
    synthetic: optimizer.Instance,
) -> None:
    solver = LevelSolver(synthetic, EXACT)
    result = solver.solve(9)
    again = solver.assignment(result.groupings)
    assert np.array_equal(again.site, solver.solved[9].site)
    assert again.cost == pytest.approx(result.objective, rel=1e-9)
    shuffled = result.groupings.sample(frac=1.0, random_state=0)
    assert np.array_equal(solver.assignment(shuffled).site, again.site)
    with pytest.raises(ValueError, match="not a groupings table"):
        solver.assignment(result.groupings.iloc[1:])


@pytest.mark.parametrize("sites, first", [(0, "polish"), (10**6, "rens")])
def test_swaps_run_before_rens_when_the_lp_leaves_many_agencies_fractional(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch, sites: int, first: str
) -> None:
    monkeypatch.setattr(engine, "RENS_SITES", sites)
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(10)
    calls: list[str] = []
    for name in ("polish", "rens"):
        spy(monkeypatch, solver, name, lambda *a, name=name: calls.append(name))
    result = solver.solve(9)
    assert calls[0] == first
    assert result.status == "optimal"
    assert result.objective == pytest.approx(LevelSolver(synthetic, EXACT).solve(9).objective)


@pytest.mark.parametrize("when", ["before", "after"])
def test_swaps_around_rens_stop_after_the_neighbourhood_time(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # uncapped, they would get as long as the level took so far (see _deadline)
    monkeypatch.setattr(engine, "RENS_SITES", 0 if when == "before" else 10**9)
    monkeypatch.setattr(engine, "NEIGHBOURHOOD_TIME", 1e-3)
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(10)
    if when == "after":  # no swaps before RENS, and RENS finds nothing
        monkeypatch.setattr(solver, "rens", lambda best, *a: (best, True))
    given: list[float] = []
    spy(monkeypatch, solver, "polish", lambda best, until, *a, **k: given.append(until - clock()))
    result = solver.solve(9)
    assert given and given[0] <= 1e-3
    assert result.status == "optimal"


def test_a_rens_out_of_time_runs_again_before_any_swaps(
    synthetic: optimizer.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # swaps between them spent 5 s at uk-councils level 237 from scratch (see _benders)
    monkeypatch.setattr(engine, "RENS_SITES", 10**9)  # no swaps before RENS
    solver = LevelSolver(synthetic, EXACT)
    solver.solve(10)
    calls: list[str] = []

    def out_of_time(best: Any, *args: Any) -> tuple[Any, bool]:
        calls.append("rens")
        return best, False

    monkeypatch.setattr(solver, "_rens_pays", lambda cost, bound: True)
    monkeypatch.setattr(solver, "rens", out_of_time)
    spy(monkeypatch, solver, "polish", lambda *a, **k: calls.append("polish"))
    result = solver.solve(9)
    assert calls == ["rens", "rens"]
    assert result.status == "optimal"


def test_lp_rounds_stop_once_more_cuts_could_barely_raise_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the gap allows ``SETTLED_GAP`` of the LP's value, the rounds stop once settled.

    Settled: its shortfall (how far every cut together could still raise
    the LP) is within ``LP_SETTLED`` of what the gap allows (GBP). The
    level's bound then stays within that share of the bound the rounds
    reach when run to the end. Here the gap is absolute, 1.2e-3 of the
    status quo's total (above every level's LP value).
    """
    folder = write_dataset(tmp_path / "synth", 500, seed=1, sites=40)
    instance = optimizer.load(folder, folder / "model.toml")
    allowed = 1.2e-3 * status_quo(instance)
    real, seen = engine.shortfall, []

    def recorded(*args: Any) -> float:  # the module's spy() sees arguments, not results
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(engine, "shortfall", recorded)
    share, runs = engine.LP_SETTLED, {}
    for settled in (share, 0.0):
        monkeypatch.setattr(engine, "LP_SETTLED", settled)
        seen.clear()
        solver = LevelSolver(instance, SolverOptions(gap=0.0, gap_abs=allowed))
        result = solver.solve(60)
        assert result.status == "optimal"
        limit = settled * allowed
        assert all(value > limit for value in seen[:-1])
        runs[settled] = (len(seen), result.bound, seen[-1] <= limit)
    (rounds, bound, stopped), (all_rounds, full_bound, _) = runs[share], runs[0.0]
    assert stopped and rounds < all_rounds
    assert bound >= full_bound - share * allowed
    seen.clear()
    assert LevelSolver(instance, SolverOptions(gap=1e-4)).solve(60).status == "optimal"
    assert not seen  # at tighter gaps the rounds run to the end


@pytest.fixture(scope="module")
def warm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150-body synthetic dataset folder (the package's generator, seed 1)."""
    return write_dataset(tmp_path_factory.mktemp("warm"), 150, 1)


@pytest.fixture(scope="module")
def warm(warm_folder: Path) -> tuple[optimizer.Instance, SolveResult]:
    """The 150-body synthetic instance and its level 20 solved to optimality."""
    instance = optimizer.load(warm_folder, warm_folder / "model.toml")
    return instance, solve_level(instance, 20)


def test_a_warm_start_stopped_at_once_is_never_worse_than_itself(
    warm: tuple[optimizer.Instance, SolveResult],
) -> None:
    """Issue 31 item 3: the start is priced first and kept; the bound is finite, never -inf.

    At 0.01 s no LP finishes. The optimum's site ids were priced by the
    assignment alone (0.5% above the optimum on this instance) and returned
    so, with a bound of -inf; its table was refused.
    """
    instance, best = warm
    quick = SolverOptions(time_limit=0.01)
    from_table = solve_level(instance, 20, quick, start=best.groupings)
    assert from_table.objective <= best.objective * (1 + 1e-9)
    solver = LevelSolver(instance)
    mask = engine.site_mask(instance, best.open_sites, "start")
    assigned = solver.assigner.assign(mask)
    assert assigned is not None
    priced = solver.priced(best.open_sites)
    assert priced.cost < assigned.cost  # the band copies refined with the sites fixed
    from_ids = solve_level(instance, 20, quick, start=best.open_sites)
    assert from_ids.objective <= priced.cost * (1 + 1e-9)
    for result in (from_table, from_ids):
        assert math.isfinite(result.bound)
        assert solver.floor_bound(20) <= result.bound <= best.objective


def test_the_floor_bound_holds_at_every_level(toy: optimizer.Instance) -> None:
    """The bound found without an LP is below every level's proven optimum (real solver)."""
    solver = LevelSolver(toy, EXACT)
    for level in (6, 5, 4, 3):
        optimum = solve_level(toy, level, EXACT)
        assert 0.85 * optimum.objective < solver.floor_bound(level) <= optimum.bound + 1e-6
    assert solver.floor_bound(None) <= solve_level(toy, None, EXACT).bound + 1e-6


def test_a_start_at_another_level_is_bad_input(toy: optimizer.Instance) -> None:
    with pytest.raises(DataValidationError, match="opens 4 agencies, not 3"):
        solve_level(toy, 3, start=["a2", "a4", "s1", "s2"])
    with pytest.raises(DataValidationError, match="do not reach every body"):
        solve_level(toy, 2, start=["a2", "s1"])


def test_solve_cli_has_the_curves_default_time_limit(cli: CliRunner) -> None:
    """Issue 31 item 7: solve ran without a limit by default."""
    assert DEFAULT_TIME_LIMIT == 30.0
    for command in ("solve", "curve"):
        code, stdout, stderr = cli(command, "--help", columns=100)
        assert code == 0, stderr
        text = " ".join(stdout.split())
        after = text[text.index("--time-limit") :]
        assert "[default: 30.0]" in after[: after.index("--", 3)]


@pytest.mark.parametrize("level", ["30", "best"])
def test_a_solve_that_hits_its_limit_still_writes_a_grouping(
    warm_folder: Path, cli: CliRunner, tmp_path: Path, level: str
) -> None:
    """At 0.01 s no LP finishes: the greedy pass's grouping (or a covering MIP's) comes back.

    Before, both exited 4 with no grouping ("no grouping found within the time limit").
    """
    out = tmp_path / "out"
    args = ["--data", warm_folder, "--model", warm_folder / "model.toml", "--out", out]
    code, stdout, stderr = cli("solve", "--level", level, "--time-limit", "0.01", *args)
    assert code == 0, stderr
    assert "time_limit" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "time_limit"
    assert math.isfinite(summary["bound"]) and summary["bound"] <= summary["objective"]
    instance = optimizer.load(warm_folder, warm_folder / "model.toml")
    check = evaluate(instance, read_groupings(out / "groupings.csv"))
    assert check.feasible and check.total == pytest.approx(summary["objective"], rel=1e-9)
    if level != "best":
        assert check.level == int(level)


def test_solve_one_reports_its_phases_best_and_bound(toy: optimizer.Instance) -> None:
    """The progress line's source: each phase with the best total and bound so far."""
    heard: list[tuple[str, float, float]] = []
    result = solve_one(toy, 3, SolverOptions(), listener=lambda *a: heard.append(a))
    assert result.objective == pytest.approx(467146.0)
    phases = [phase for phase, _, _ in heard]
    assert phases[0] == "greedy pass" and "LP rounds" in phases
    assert all(bound <= 467146.0 + 1e-6 for _, _, bound in heard)
    assert min(best for _, best, _ in heard) >= 467146.0 - 1e-6


@pytest.mark.parametrize("level", [0, -1])
def test_a_level_below_one_is_bad_input(toy: optimizer.Instance, level: int) -> None:
    """No grouping has fewer than one agency: refused, by solve_level and by a solver."""
    with pytest.raises(DataValidationError, match=r"\(level\).*at least 1"):
        solve_level(toy, level)
    with pytest.raises(DataValidationError, match=r"\(level\).*at least 1"):
        LevelSolver(toy).solve(level)


@pytest.mark.parametrize(
    ("forced", "start", "message"),
    [
        ({"keep_open": ["a1"]}, ["a2", "a4", "s1"], "'a1' is forced open but the start leaves"),
        ({"keep_closed": ["a3"]}, ["a1", "a2", "a3"], "'a3' may not open"),
    ],
)
@pytest.mark.parametrize("level", [None, 3])
def test_a_start_against_the_forced_sites_is_refused_naming_the_site(
    toy: optimizer.Instance,
    forced: dict[str, list[str]],
    start: list[str],
    message: str,
    level: int | None,
) -> None:
    """A start may neither shut a site forced open nor open a closed one.

    Before, the first came back without the site, called optimal (or a
    SolverError), the second raised SolverError or IndexError.
    """
    with pytest.raises(DataValidationError, match=message):
        solve_level(toy, level, start=start, **forced)
