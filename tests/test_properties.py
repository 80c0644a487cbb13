"""Property-based tests: the engine and the curve against brute force on random tiny datasets.

Each example is a dataset folder drawn by :func:`strategies.tiny_datasets`
(zero-spend bodies, capacities, radii, bands, both scenario switches,
separate sites, sites forced open or closed), loaded as a user's folder is,
and solved by the engine in one of the ways a user can: one level at a time
(:func:`optimizer.solve_level`, with and without a start), one solver down
levels in any order (as each worker of a curve keeps one), or as a curve
(:func:`optimizer.consolidation_curve`, in this process and on two worker
processes) asked for any levels in any order, duplicates included. Each
answer is held against the exhaustive optimum of :mod:`bruteforce`:

* every reported lower bound is at or below the optimum;
* a level reported ``optimal`` costs the optimum (the gap asked for is 1e-9,
  so this holds however the gap is defined);
* every level with a grouping costs at least the optimum, exactly what the
  evaluator makes of its grouping, and has as many agencies as its level;
* a level is infeasible exactly when the brute force finds no grouping;
* every level asked for is reported once.

The examples are derandomized (the same on every run, no example database):
CI runs the same cases every time. ``PROPERTY_EXAMPLES=5`` multiplies the
number of examples for a longer search; ``PROPERTY_SHRINK=1`` shrinks a
failure to a smaller dataset (which can take minutes). A failure prints the
dataset's files (paste them into a folder and run ``consolidate`` on it), the
levels drawn and both answers.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bruteforce
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st
from strategies import Tiny, tiny_datasets

from optimizer import (
    CurveOptions,
    DataValidationError,
    InfeasibleError,
    Instance,
    SolverOptions,
    consolidation_curve,
    evaluate,
    read_groupings,
    solve_level,
)
from optimizer.engine import LevelSolver
from optimizer.executors import ExecutorOptions
from optimizer.resources import data_path
from optimizer.run import open_run

SCALE = float(os.environ.get("PROPERTY_EXAMPLES", "1"))
# Shrinking a failure to its smallest dataset can take minutes: only when asked.
PHASES = tuple(p for p in Phase if p != Phase.shrink or os.environ.get("PROPERTY_SHRINK"))
BUDGET = 200_000  # assignments the brute force may enumerate over every level of one dataset
OPTIONS = SolverOptions(gap=1e-9, time_limit=20.0)
REL = 1e-7  # of the optimum: what "equal" and "at or below" allow for rounding
WITH_GROUPING = ("optimal", "time_limit")
Brute = Callable[[int | None], bruteforce.Solution | None]


def examples(n: int) -> settings:
    """Settings for a property run ``n`` times (times ``PROPERTY_EXAMPLES``), reproducibly."""
    return settings(
        max_examples=max(1, round(n * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@contextmanager
def loaded(case: Tiny) -> Iterator[tuple[Instance, Brute, Path]]:
    """The dataset loaded from a scratch folder, its brute force (cached) and a scratch folder.

    Datasets whose brute force would enumerate more than ``BUDGET``
    assignments are skipped (``assume``), and so are those with no spend at
    all (every row 0, or no row) once their load has refused them.
    """
    note(case.describe())
    with tempfile.TemporaryDirectory() as scratch:
        try:
            instance = case.load(Path(scratch) / "data")
        except DataValidationError as err:  # no spend at all is bad input (issue 31)
            said = str(err)
            assert "no body has spend above 0" in said or "header but no rows" in said, said
            assume(False)
        forced = (case.keep_open, case.keep_closed)
        assume(bruteforce.count(instance, None, *forced) <= BUDGET)

        @functools.cache
        def brute(level: int | None) -> bruteforce.Solution | None:
            return bruteforce.solve(instance, level, *forced)

        yield instance, brute, Path(scratch)


def _tol(value: float) -> float:
    return REL * max(1.0, abs(value))


def check_level(
    level: int | None,
    expected: bruteforce.Solution | None,
    status: str,
    total: float,
    bound: float,
    recomputed: float | None,
    opened: list[str] | None = None,
) -> None:
    """Hold one reported level against the brute force's optimum (None: no grouping exists).

    ``opened`` (the engine's open sites) is only shown in the message.
    """
    said = f"level {level}: {status}, total {total!r}, bound {bound!r}, open {opened}"
    if expected is None:
        assert status == "infeasible", f"{said}, but no grouping exists (brute force)"
        return
    best = expected.total
    said += f"; the optimum is {best!r} with {list(expected.open_sites)}"
    assert status != "infeasible", f"{said}: a grouping exists"
    assert status in (*WITH_GROUPING, "no_solution"), said
    assert math.isfinite(bound), f"{said}: no finite bound"
    assert bound <= best + _tol(best), f"{said}: the bound is above the optimum"
    if status == "no_solution":
        return
    assert total >= best - _tol(best), f"{said}: cheaper than the optimum"
    if status == "optimal":
        assert math.isclose(total, best, rel_tol=REL), f"{said}: 'optimal' but not the optimum"
    assert recomputed is not None
    assert math.isclose(total, recomputed, rel_tol=REL), f"{said}: the evaluator says {recomputed}"


def check_forced(instance: Instance, case: Tiny, level: int | None, opened: list[str]) -> None:
    """The sites forced open (status, ``--keep-open``) are open, those kept closed are not."""
    shut = set(_forced_open(instance, case)) - set(opened)
    assert not shut, f"level {level}: sites forced open are not: {sorted(shut)}"
    kept = set(case.keep_closed) & set(opened)
    assert not kept, f"level {level}: sites kept closed are open: {sorted(kept)}"


def _fits(instance: Instance, case: Tiny, level: int | None, start: list[str]) -> bool:
    """Whether ``start`` may be a level's open sites: its size, none closed, every forced one."""
    status = instance.sites["status"]
    closed = set(status.index[status == "closed"]) | set(case.keep_closed)
    sites = set(start)
    return (
        (level is None or len(sites) == level)
        and not sites & closed
        and set(_forced_open(instance, case)) <= sites
    )


def _serves_no_one(instance: Instance, case: Tiny, start: list[str]) -> bool:
    """Whether no grouping opens exactly the sites of ``start`` (the brute force, any level).

    Such a start is refused ("the start's sites do not reach every body"):
    it says which agencies open, and no grouping opens just those.
    """
    others = [s for s in case.site_ids if s not in start]
    return bruteforce.solve(instance, None, sorted(set(start)), others) is None


def _forced_open(instance: Instance, case: Tiny) -> list[str]:
    """The sites open at every level: status ``open`` and ``--keep-open``."""
    status = instance.sites["status"]
    return sorted(set(status.index[status == "open"]) | set(case.keep_open))


def _levels(case: Tiny, free: bool) -> st.SearchStrategy[int | None]:
    """A level of ``case``: 1 to one more than its sites, or None (free) when ``free``."""
    numbers: st.SearchStrategy[int | None] = st.integers(1, len(case.site_ids) + 1)
    return st.one_of(st.none(), numbers) if free else numbers


# ------------------------------------------------------------------ level by level


def _solve(
    instance: Instance, case: Tiny, level: int | None, start: list[str] | None
) -> tuple[str, float, float, float | None, list[str]]:
    """``solve_level``'s answer: status, total, bound, the evaluator's total, open sites."""
    forced = {"keep_open": case.keep_open, "keep_closed": case.keep_closed}
    try:
        result = solve_level(instance, level, OPTIONS, start=start, **forced)
    except InfeasibleError:
        return "infeasible", math.nan, math.nan, None, []
    except DataValidationError as err:  # a start that is no grouping at this level is refused
        assert start is not None, err
        assert not _fits(instance, case, level, start) or _serves_no_one(instance, case, start), (
            f"{start} refused: {err}"
        )
        return "refused", math.nan, math.nan, None, []
    again = evaluate(instance, result.groupings, open_sites=result.open_sites)
    assert again.feasible, [str(v) for v in again.violations]
    return result.status, result.objective, result.bound, again.total, result.open_sites


@examples(80)
@given(data=st.data(), case=tiny_datasets())
def test_solve_level_matches_brute_force(data: st.DataObject, case: Tiny) -> None:
    """``solve_level`` at a few levels (or free), some with a start of any sites."""
    with loaded(case) as (instance, brute, _):
        levels = data.draw(st.lists(_levels(case, free=True), min_size=1, max_size=3), "levels")
        for level in levels:
            start = data.draw(st.one_of(st.none(), st.lists(st.sampled_from(case.site_ids))))
            status, total, bound, again, opened = _solve(instance, case, level, start)
            if status == "refused":
                continue
            check_level(level, brute(level), status, total, bound, again, opened)
            if status in WITH_GROUPING:
                check_forced(instance, case, level, opened)
                assert level is None or len(opened) == level, f"level {level} opened {opened}"


@examples(80)
@given(data=st.data(), case=tiny_datasets())
def test_one_solver_in_any_order_matches_brute_force(data: st.DataObject, case: Tiny) -> None:
    """One solver (as a curve's worker keeps) down levels in any order, repeats included.

    Its cuts, tangent bounds and the groupings of the levels it finished
    carry over from each level to the next.
    """
    with loaded(case) as (instance, brute, _):
        levels = data.draw(st.lists(_levels(case, free=True), min_size=1, max_size=6), "levels")
        try:
            solver = LevelSolver(
                instance, OPTIONS, keep_open=case.keep_open, keep_closed=case.keep_closed
            )
        except InfeasibleError:  # refused before any level: none may have a grouping
            for level in levels:
                check_level(level, brute(level), "infeasible", math.nan, math.nan, None)
            return
        for level in levels:
            try:
                result = solver.solve(level)
            except InfeasibleError:
                check_level(level, brute(level), "infeasible", math.nan, math.nan, None)
                continue
            again = evaluate(instance, result.groupings, open_sites=result.open_sites)
            assert again.feasible, [str(v) for v in again.violations]
            check_level(
                level,
                brute(level),
                result.status,
                result.objective,
                result.bound,
                again.total,
                result.open_sites,
            )
            check_forced(instance, case, level, result.open_sites)
            if level is not None:
                assert len(result.open_sites) == level, f"level {level}: {result.open_sites}"


# ------------------------------------------------------------------------ curves


def _curve(
    instance: Instance, case: Tiny, levels: list[int], out: Path, executor: ExecutorOptions | None
) -> pd.DataFrame:
    options = CurveOptions(
        levels=tuple(levels),
        solver=OPTIONS,
        keep_open=case.keep_open,
        keep_closed=case.keep_closed,
    )
    return consolidation_curve(instance, options, out, executor=executor).to_frame()


def check_curve(
    instance: Instance, case: Tiny, brute: Brute, levels: list[int], frame: pd.DataFrame, out: Path
) -> None:
    """Every level asked for once, each against the brute force, each grouping re-costed."""
    reported = sorted(frame["level"].tolist())
    assert reported == sorted(set(levels)), f"asked for {levels}, reported {reported}"
    forced = _forced_open(instance, case)
    run = open_run(out, instance)
    for row in frame.to_dict("records"):
        level, again, check = int(row["level"]), None, None
        if row["status"] in WITH_GROUPING:
            grouping = read_groupings(out / "groupings" / f"level-{level}.csv")
            # the grouping table cannot name an open agency with no member:
            # levels/level-K.json's idle_sites does
            opened_too = [*forced, *run.idle_sites(level)]
            check = evaluate(instance, grouping, open_sites=opened_too)
            assert check.feasible, f"level {level}: {[str(v) for v in check.violations]}"
            check_forced(instance, case, level, check.open_sites)
            again = check.total
        opened = None if check is None else check.open_sites
        check_level(
            level, brute(level), row["status"], row["total"], row["lower_bound"], again, opened
        )
        if again is not None:
            assert math.isclose(run.evaluation(level).total, row["total"], rel_tol=REL)


def _curve_case(data: st.DataObject, case: Tiny, most: int) -> list[int]:
    """Any levels of ``case`` in any order, repeats included."""
    return data.draw(st.lists(_levels(case, free=False), min_size=1, max_size=most), "levels")


def run_curve_property(
    data: st.DataObject, case: Tiny, most: int, executor: ExecutorOptions | None
) -> None:
    """Draw levels, run the curve into a fresh folder and check it (or its refusal)."""
    with loaded(case) as (instance, brute, scratch):
        levels = _curve_case(data, case, most)
        out = scratch / "run"
        if not case.hosts_everyone:  # the status quo is undefined: the curve refuses
            with pytest.raises(DataValidationError, match="status quo"):
                _curve(instance, case, levels, out, executor)
            return
        try:
            frame = _curve(instance, case, levels, out, executor)
        except InfeasibleError:  # refused before any level: none may have a grouping
            for level in levels:
                check_level(level, brute(level), "infeasible", math.nan, math.nan, None)
            return
        check_curve(instance, case, brute, levels, frame, out)


@examples(100)
@given(data=st.data(), case=tiny_datasets())
def test_curve_matches_brute_force(data: st.DataObject, case: Tiny) -> None:
    """A curve in this process: any levels, in any order, repeats included."""
    run_curve_property(data, case, most=6, executor=None)


@examples(6)
@given(data=st.data(), case=tiny_datasets(layouts=("bodies", "hosted")))
def test_curve_on_workers_matches_brute_force(data: st.DataObject, case: Tiny) -> None:
    """A curve on two worker processes (each keeps one solver for the levels it is given)."""
    run_curve_property(data, case, most=8, executor=ExecutorOptions("processes", workers=2))


# ------------------------------------------------------------- levels refused


@examples(10)
@given(case=tiny_datasets(), level=st.integers(-3, 0))
def test_levels_below_one_are_refused(case: Tiny, level: int) -> None:
    """A level below 1 is bad input, by ``solve_level`` and by the curve (before solving)."""
    with loaded(case) as (instance, _, scratch):
        with pytest.raises(DataValidationError):
            solve_level(instance, level, OPTIONS)
        levels = (len(case.site_ids), level)
        with pytest.raises(DataValidationError):
            consolidation_curve(
                instance, CurveOptions(levels=levels, solver=OPTIONS), scratch / "o"
            )
        assert not (scratch / "o" / "levels").exists()


def test_examples_exercise_the_model() -> None:
    """The strategy draws what the properties claim to cover (checked on 150 draws)."""
    seen: dict[str, Any] = {}

    @settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @given(case=tiny_datasets())
    def draw(case: Tiny) -> None:
        model = case.files["model.toml"]
        spend = case.files["spend.csv"]
        sites = case.files.get("sites.csv", "")
        flags = {
            f"layout {case.layout}": True,
            "whole body": "split_categories = false" in model,
            "nation rule off": "same_nation = false" in model,
            "radius": "radius_km" in model,
            "three bands": model.count("], [") >= 2,
            "zero row": any(r.endswith(",0") for r in spend.splitlines()),
            "capacity": any(r.split(",")[6] for r in sites.splitlines()[1:]),
            "status open": ",open," in sites,
            "status closed": ",closed," in sites,
            "keep open": bool(case.keep_open),
            "keep closed": bool(case.keep_closed),
            "no host for a buyer": not case.hosts_everyone,
        }
        for key, hit in flags.items():
            seen[key] = seen.get(key, 0) + int(hit)

    draw()
    assert all(seen.values()), seen


# --------------------------------------------------------------- known cases


def _toy(**changes: str) -> dict[str, str]:
    """The toy dataset's files and model, with some replaced or added."""
    names = ("bodies.csv", "spend.csv", "edges.csv")
    files = {n: data_path("datasets", "toy", n).read_text(encoding="utf-8") for n in names}
    files["model.toml"] = data_path("models", "toy.toml").read_text(encoding="utf-8")
    return files | {name.replace("_", "."): text for name, text in changes.items()}


_SPEND = data_path("datasets", "toy", "spend.csv").read_text(encoding="utf-8")
_SITES = "site_id,name,nation,x_km,y_km,fixed_cost,status,body_id\n" + "".join(
    f"{b},{b},{n},{x},{y},,,{b}\n"
    for b, n, x, y in (
        ("a1", "Northland", 0, 0),
        ("a2", "Northland", 10, 0),
        ("a3", "Northland", 20, 0),
        ("a4", "Northland", 10, 15),
        ("s1", "Southland", 0, -40),
        ("s2", "Southland", 12, -40),
    )
)
_EDGES = data_path("datasets", "toy", "edges.csv").read_text(encoding="utf-8")
KNOWN: dict[str, tuple[Tiny, tuple[int, ...]]] = {
    # issue 31 item 1: a body with no spend (a4 here) loses and mislabels levels
    "zero-spend-body": (
        Tiny(
            "toy",
            _toy(
                spend_csv=_SPEND.replace("a4,care,40000", "a4,care,0").replace(
                    "a4,ict,10000", "a4,ict,0"
                )
            ),
        ),
        (6, 5, 4, 3, 2),
    ),
    # a category in the model that nobody buys
    "category-nobody-buys": (
        Tiny(
            "toy",
            _toy(
                spend_csv="".join(
                    line + "\n" for line in _SPEND.splitlines() if ",ict," not in line
                )
            ),
        ),
        (6, 4, 3),
    ),
    # a spare site with no host, cheap enough that level 4's optimum leaves it empty
    "empty-site-at-optimum": (
        Tiny(
            "toy",
            _toy(
                sites_csv=_SITES + "x1,Spare office,Northland,30,30,1000,,\n",
                edges_csv=_EDGES + "a4,x1,30\n",
            ),
        ),
        (6, 4, 3),
    ),
    # a site forced open (status open) that no body may use: open at every level, empty
    "open-site-nobody-uses": (
        Tiny(
            "toy",
            _toy(
                sites_csv=_SITES + "w1,Westgate,Westland,60,0,,open,\n",
                edges_csv=_EDGES + "a3,w1,40\n",
            ),
        ),
        (7, 5, 4),
    ),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_cases_match_brute_force(name: str, tmp_path: Path) -> None:
    """Datasets that broke the engine once: each level alone and the curve, as above."""
    case, levels = KNOWN[name]
    instance = case.load(tmp_path / "data")

    @functools.cache
    def brute(level: int | None) -> bruteforce.Solution | None:
        return bruteforce.solve(instance, level)

    for level in levels:
        status, total, bound, again, opened = _solve(instance, case, level, None)
        check_level(level, brute(level), status, total, bound, again, opened)
    frame = _curve(instance, case, list(levels), tmp_path / "run", None)
    check_curve(instance, case, brute, list(levels), frame, tmp_path / "run")


def test_no_spend_at_all_is_refused(tmp_path: Path) -> None:
    """No body buys anything: bad input (issue 31's first round), refused naming spend.csv."""
    case = Tiny("toy", _toy(spend_csv="body_id,category,spend\na1,care,0\n"))
    with pytest.raises(DataValidationError, match=r"spend\.csv.*no body has spend above 0"):
        case.load(tmp_path / "data")
