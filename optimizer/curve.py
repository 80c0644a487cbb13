"""The consolidation curve: the best grouping at every level, with proof.

One pass downward from the status quo (every body buying alone) closes, at
each step, the agency whose closure is estimated to cost least, reassigns
its clients and re-prices the bands: every level gets a strong incumbent in
seconds. Each requested level is then improved by swaps and solved exactly
(Benders, warm-started from the better of that incumbent and the nearest
level the same solver finished above it with sites dropped, re-using every
cut found at the levels before) until the proven gap is within ``gap``.
Neither convexity of the curve nor nesting of groupings across levels is
assumed: each level is solved on its own, the other levels only supply
starting points. Once every level is done, a level the time limit left above
the gap is solved once more, from the grouping its finished neighbours above
and below give when that is cheaper than its own, else afresh
(:func:`second_tries`).

Every finished level is written atomically as it completes; a run can be
interrupted and resumed in its folder (``resume=True``), which refuses when
the inputs or options differ from those recorded there.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from optimizer.engine import (
    NEARBY_SHARE,
    LevelSolver,
    SolveResult,
    check_bound,
    check_level_number,
    versions,
)
from optimizer.engine import Listener as LevelListener
from optimizer.errors import DataValidationError, InfeasibleError, NoGroupingError
from optimizer.evaluate import GROUPING_COLUMNS, Evaluation, evaluate, status_open
from optimizer.executors import ExecutorOptions, completed, worker_count
from optimizer.heuristics import Assignment, better, drop_site, drop_sites, swap_search
from optimizer.instance import Instance
from optimizer.results import (
    atomic_write_text,
    claim_folder,
    output_folder,
    read_groupings,
    read_row,
    write_groupings,
    write_json,
)
from optimizer.solve import Proof, SolverOptions, clock

CURVE_COLUMNS = [
    "level",
    "total",
    "agencies",
    "desks",
    "purchases",
    "distance",
    "savings",
    "savings_pct",
    "lower_bound",
    "gap",
    "status",
    "seconds",
    "discounts",
]
LOWEST_DEFAULT = 4
DEFAULT_POINTS = 15
SWAP_MOVES = 8  # swaps per level in the downward pass
SWAP_LEVELS = 24  # levels the downward pass improves by swaps, at most
PASS_SHARE = 0.1  # of the time limit times the levels: the downward pass's budget
# Levels handed out after the lowest one, per worker besides the first: the
# lowest level's LP is the weakest, and it takes about three times as long as
# the levels above it (see level_tasks).
LOWEST_AHEAD = 3
EMPTY = ("infeasible", "no_solution")
IDLE = "idle_sites"  # a level row's open agencies with no member (levels/level-K.json only)
SERIAL = ExecutorOptions("serial")


@dataclass(frozen=True)
class CurveOptions:
    """What to sweep and how hard to try at each level."""

    levels: tuple[int, ...]
    solver: SolverOptions = field(default_factory=SolverOptions)
    keep_open: tuple[str, ...] = ()
    keep_closed: tuple[str, ...] = ()


class LevelTask(NamedTuple):
    """A level to solve, its start (None: whatever the solver finds) and whether afresh."""

    level: int
    start: Assignment | None
    afresh: bool = False  # ignore the levels the solver finished (LevelSolver.solve)


def default_levels(
    n_bodies: int, lowest: int = LOWEST_DEFAULT, points: int = DEFAULT_POINTS
) -> list[int]:
    """The status quo, then about ``points`` levels spread down to ``lowest``, denser low.

    Examples
    --------
    >>> default_levels(382)
    [382, 282, 208, 153, 113, 84, 62, 46, 34, 25, 18, 13, 10, 7, 5, 4]
    """
    if n_bodies <= lowest:
        return list(range(n_bodies, 0, -1))
    spread = np.geomspace(lowest, n_bodies, points + 1)
    return sorted({round(v) for v in spread} | {n_bodies}, reverse=True)


def parse_levels(
    spec: str,
    n_bodies: int,
    min_level: int | None = None,
    max_level: int | None = None,
    *,
    most: int | None = None,
) -> list[int]:
    """Parse ``all``, ``default`` or a list such as ``380,200,100..90,50``.

    ``all`` and ``default`` start at ``n_bodies`` (the status quo of one
    agency a body); a level listed may go up to ``most`` when that is more
    (the sites that may open, :func:`level_limit`: spare sites and sites
    forced open can make groupings of more agencies than bodies). A level
    above the sites that may open is solved and reported infeasible.

    Examples
    --------
    >>> parse_levels("10,8..6", 20)
    [10, 8, 7, 6]
    >>> parse_levels("all", 6)
    [6, 5, 4]
    """
    text = spec.strip().lower()
    top = n_bodies if most is None else max(n_bodies, most)
    if text == "all":
        levels = list(range(n_bodies, min(LOWEST_DEFAULT, n_bodies) - 1, -1))
    elif text == "default":
        levels = default_levels(n_bodies)
    else:
        levels = sorted(
            {k for part in text.split(",") if part.strip() for k in _part(part, top)},
            reverse=True,
        )
    bad = [k for k in levels if not 1 <= k <= top]
    if bad:
        raise DataValidationError(
            [f"(--levels) | levels must be between 1 and {top}, got {bad[:5]}"]
        )
    if not levels:
        raise DataValidationError([f"(--levels) | no levels given in {spec!r}"])
    _check_level_bounds(min_level, max_level, top)
    low = min_level if min_level is not None else 1
    high = max_level if max_level is not None else top
    if low > high:
        raise DataValidationError(
            [f"(--min-level) | {low} is above --max-level {high}: no level is left"]
        )
    kept = [k for k in levels if low <= k <= high]
    if not kept:
        raise DataValidationError(
            [
                f"(--levels) | none of {spec!r} lies between {low} and {high} (--min-level,"
                " --max-level)"
            ]
        )
    return kept


def level_limit(instance: Instance) -> int:
    """The largest level of ``instance``: its sites that may open (every one not ``closed``).

    Each open site is one agency, so no grouping has more agencies than
    sites that may open; with a site forced open besides every body's own,
    the status quo itself has more agencies than bodies.
    """
    return int((instance.sites["status"] != "closed").sum())
def _check_level_bounds(min_level: int | None, max_level: int | None, top: int) -> None:
    """Refuse a ``--min-level`` above ``top`` or a ``--max-level`` below 1: no level is left."""
    allowed = f"this data's levels run from 1 to {top}"
    if min_level is not None and min_level > top:
        raise DataValidationError([f"(--min-level) | {min_level} leaves no level: {allowed}"])
    if max_level is not None and max_level < 1:
        raise DataValidationError([f"(--max-level) | {max_level} leaves no level: {allowed}"])


def _part(part: str, n_bodies: int) -> list[int]:
    """The levels of one part of a list; a range reaching past ``n_bodies`` stops there.

    The levels past it are refused by the caller, which sees the range's ends.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", part)
    if match is None:
        raise DataValidationError(
            [f"(--levels) | expected a number or a range like 100..90, got {part!r}"]
        )
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) else a
    low, high = min(a, b), max(a, b)
    inside = range(max(low, 1), min(high, n_bodies) + 1)
    return sorted({low, high, *inside})


# --------------------------------------------------------------------- the curve


@dataclass
class Curve:
    """The rows of a consolidation curve and where they were written."""

    rows: list[dict[str, Any]]
    status_quo: float
    folder: Path | None = None

    def to_frame(self) -> pd.DataFrame:
        """The curve as a table, one row per level, most agencies first.

        The agencies that buy for no one (``idle_sites``, a list) stay in
        ``levels/level-K.json`` and are not a column.
        """
        frame = pd.DataFrame([{k: v for k, v in row.items() if k != IDLE} for row in self.rows])
        if "gap_gbp" not in frame:  # rows of a run folder written before the column
            frame["gap_gbp"] = frame["total"] - frame["lower_bound"]
        return frame.sort_values("level", ascending=False).reset_index(drop=True)

    @property
    def breakdown(self) -> pd.DataFrame:
        """The cost terms by level (GBP/yr), indexed by level, most agencies first.

        Examples
        --------
        >>> import optimizer
        >>> curve = consolidation_curve(optimizer.load("toy"), CurveOptions(levels=(6, 3)))
        >>> curve.breakdown.loc[3, ["agencies", "desks", "distance", "discounts"]].tolist()
        [15000.0, 9000.0, 146.0, 17000.0]
        """
        terms = ["agencies", "desks", "purchases", "distance", "discounts", "total"]
        return self.to_frame().set_index("level")[terms]

    @property
    def groupings(self) -> dict[int, pd.DataFrame]:
        """Each solved level's grouping, read from the run folder (``out=``).

        Raises
        ------
        ValueError
            When the curve was not written to a run folder.
        """
        if self.folder is None:
            raise ValueError("groupings are kept in the run folder: give consolidation_curve out=")
        levels = [int(row["level"]) for row in self.rows]
        files = {k: self.folder / "groupings" / f"level-{k}.csv" for k in levels}
        return {k: read_groupings(path) for k, path in sorted(files.items()) if path.exists()}

    def plot(self, ax: Any = None, kind: str = "curve") -> Any:
        """Plot the curve (``kind="curve"``) or its cost breakdown (``"breakdown"``).

        Delegates to :func:`optimizer.plot.plot_curve` or
        :func:`optimizer.plot.plot_breakdown`; returns the matplotlib Axes.
        """
        from optimizer.plot import plot_breakdown, plot_curve

        if kind not in ("curve", "breakdown"):
            raise ValueError(f"kind must be 'curve' or 'breakdown', got {kind!r}")
        draw = plot_curve if kind == "curve" else plot_breakdown
        return draw(self.to_frame(), ax)


Listener = Callable[[dict[str, Any] | None, int, int], None]


def consolidation_curve(
    instance: Instance,
    options: CurveOptions,
    out: Path | None = None,
    *,
    resume: bool = False,
    on_level: Listener | None = None,
    inputs: dict[str, str] | None = None,
    executor: ExecutorOptions | None = None,
) -> Curve:
    """Solve every requested level; write each as it finishes when ``out`` is given.

    Parameters
    ----------
    instance : Instance
        The validated data and model.
    options : CurveOptions
        The levels, the solver options and any sites forced open or closed.
    out : path, optional
        The run folder: ``curve.csv``, ``groupings/level-K.csv``,
        ``levels/level-K.json``, ``run.json``, ``summary.json``. It must be
        new, empty or a run folder, and is locked for the run
        (:func:`optimizer.results.output_folder`).
    resume : bool
        Continue a run in ``out``, skipping finished levels.
    on_level : callable, optional
        Called with (row, levels done, levels in all) after each level, and
        once with ``row=None`` when the run folder is ready.
    inputs : dict, optional
        Where the instance came from (``{"data": ..., "model": ...}``), recorded
        in ``run.json`` under ``inputs`` so the folder can be reopened
        (:func:`optimizer.run.open_run`); not compared by ``resume``.
    executor : ExecutorOptions, optional
        Where the levels are solved (:mod:`optimizer.executors`). Default: in
        this process, one after another, by one solver that re-uses its cuts
        from level to level. Elsewhere each worker keeps one solver for the
        levels it is given, and this process writes each level as it arrives.

    Examples
    --------
    >>> import optimizer
    >>> curve = consolidation_curve(optimizer.load("toy"), CurveOptions(levels=(6, 4, 3)))
    >>> curve.to_frame()[["level", "total", "status"]].values.tolist()
    [[6, 506000.0, 'optimal'], [4, 473110.0, 'optimal'], [3, 467146.0, 'optimal']]
    """
    if not options.levels:
        raise DataValidationError(["(--levels) | no levels to solve"])
    for level in options.levels:
        check_level_number(level, "--levels")
    held = nullcontext() if out is None else output_folder(Path(out), "curve")
    with held:
        return _solve_curve(instance, options, out, resume, on_level, inputs, executor)


def _solve_curve(
    instance: Instance,
    options: CurveOptions,
    out: Path | None,
    resume: bool,
    on_level: Listener | None,
    inputs: dict[str, str] | None,
    executor: ExecutorOptions | None,
) -> Curve:
    """:func:`consolidation_curve` once its run folder, if any, is held."""
    began = clock()
    done = _prepare(instance, options, out, resume, inputs)
    shared = _Levels(instance, options, status_quo(instance))
    todo = sorted((k for k in options.levels if k not in done), reverse=True)
    executor = executor or SERIAL
    run = _Run(shared, executor, done, out, on_level, len(options.levels), began)
    ahead = LOWEST_AHEAD * (worker_count(executor, len(todo)) - 1)
    run.solve(todo, ahead)
    return Curve(list(run.rows.values()), shared.quo, out)


def second_tries(
    solver: LevelSolver, rows: dict[int, dict[str, Any]], levels: list[int], proof: Proof
) -> list[LevelTask]:
    """The levels of ``levels`` left unproven, each with a start other than its own grouping.

    Once every level has been tried, a level the time limit stopped above
    the gap is solved once more, on the same workers (their cuts kept). It
    starts from what the nearest levels finished above and below give with
    sites dropped or added (:meth:`LevelSolver.nearby`; a worker's first
    try only saw the levels that worker had finished) when that is cheaper
    than its own grouping; else afresh, from its LP's rounding, so that the
    second try does not search where the first ended. ``solver`` holds every
    level's grouping. On uk-councils, level 42 stopped at 1.36e-4 on both
    tries from its own grouping (48,437.1m: no swap, nor any MIP over at
    most 4 swaps, improves it); afresh after levels 44 and 43, it was proven
    in 6.5 s (after 46 to 44, it stopped at 1.01e-4).
    """
    tries = []
    for level in levels:
        row = rows.get(level)
        if row is None or row["status"] in EMPTY or proof.holds(row["total"], row["lower_bound"]):
            continue
        walks = solver.options.time_limit
        own = solver.solved[level]
        near = solver.nearby(level, None if walks is None else NEARBY_SHARE * walks)
        if near is not None and near.cost < own.cost - 1e-9 * abs(own.cost):
            tries.append(LevelTask(level, near))
        else:
            tries.append(LevelTask(level, None, afresh=True))
    return tries


class _Run:
    """Levels being solved; each row written to ``out`` and reported to ``on_level`` as it arrives.

    ``total`` is the number of levels asked for, ``began`` when the run
    started; a level tried twice has its rows merged (:func:`merge_tries`).
    """

    def __init__(
        self,
        shared: _Levels,
        executor: ExecutorOptions,
        done: dict[int, dict[str, Any]],
        out: Path | None,
        on_level: Listener | None,
        total: int,
        began: float,
    ) -> None:
        self.shared, self.executor, self.out, self.on_level = shared, executor, out, on_level
        self.payload = shared if executor.kind == "serial" else shared.for_workers()
        self.solver = shared.solver()  # the pass's, and here the holder of every level's grouping
        self.rows = dict(done)
        if out is not None:
            self._read_back(out)
        self.total, self.began = total, began
        if on_level is not None:
            on_level(None, len(self.rows), total)

    def _read_back(self, out: Path) -> None:
        """Hold the groupings of the levels a resumed run finished before.

        Levels resumed in this process then start from them when they are
        nearby (:meth:`LevelSolver.nearby`), as they would have in one
        uninterrupted run; the cuts those levels found are lost, so a
        resumed level may still end at another grouping within the gap.
        """
        for level, row in self.rows.items():
            if row["status"] not in EMPTY:
                table = read_groupings(out / "groupings" / f"level-{level}.csv")
                self.solver.solved[level] = self.solver.assignment(table, row.get(IDLE, []))

    def solve(self, levels: list[int], ahead: int) -> None:
        """Solve ``levels`` (:func:`level_tasks`), then the second tries (:func:`second_tries`)."""

        def retries() -> list[LevelTask]:
            return second_tries(self.solver, self.rows, levels, self.solver.proof)

        tasks = level_tasks(self.solver, levels, ahead)
        with completed(
            _level_task, self.payload, tasks, self.executor, len(levels), retries
        ) as results:
            for _, (row, groupings) in results:
                self.take(row, groupings)

    def take(self, row: dict[str, Any], groupings: pd.DataFrame | None) -> None:
        """Record a level's row, write it and report it."""
        level = row["level"]
        old = self.rows.get(level)
        if old is not None:
            row, second = merge_tries(old, row, self.solver.proof)
            groupings = groupings if second else None
        self.rows[level] = row
        if groupings is not None:
            idle = row.get(IDLE, [])
            self.solver.solved[level] = self.solver.assignment(groupings, idle)
        if self.out is not None:
            _persist(self.out, row, groupings)
            rows = list(self.rows.values())
            _write_progress(self.out, rows, self.shared.quo, clock() - self.began)
        if self.on_level is not None:
            self.on_level(row, len(self.rows), self.total)


def merge_tries(
    old: dict[str, Any], new: dict[str, Any], proof: Proof
) -> tuple[dict[str, Any], bool]:
    """The row of a level solved twice, and whether its grouping is the second try's.

    The cheaper grouping, the higher bound (each try proved its own on the
    level), the time of both; the status is ``optimal`` once ``proof``
    holds for that total and bound. A bound above the total raises
    :class:`optimizer.errors.SolverError` (:func:`optimizer.engine.check_bound`).

    Examples
    --------
    >>> old = {"total": 105.0, "lower_bound": 100.0, "gap": 0.05, "status": "time_limit",
    ...        "seconds": 30.0}
    >>> new = {"total": 101.0, "lower_bound": 99.0, "gap": 0.02, "status": "time_limit",
    ...        "seconds": 20.0}
    >>> row, second = merge_tries(old, new, Proof(gap=0.01))
    >>> second, row["total"], row["lower_bound"], round(row["gap"], 4), row["status"]
    (True, 101.0, 100.0, 0.0099, 'optimal')
    >>> row["seconds"], row["gap_gbp"]
    (50.0, 1.0)
    """
    seconds = old["seconds"] + new["seconds"]
    if new["status"] in EMPTY:
        return {**old, "seconds": seconds}, False
    second = new["total"] < old["total"]
    row = new if second else old
    bound = max(old["lower_bound"], new["lower_bound"])
    check_bound(row["total"], bound, row.get("level"))
    status = "optimal" if proof.holds(row["total"], bound) else row["status"]
    merged = {**row, "lower_bound": bound, "status": status, "seconds": seconds}
    merged.update(gap=proof.relative(row["total"], bound), gap_gbp=row["total"] - bound)
    return merged, second


def status_quo(instance: Instance) -> float:
    """The total when every body buys alone through the site it hosts (computed).

    The total of :func:`status_quo_evaluation`.

    Raises
    ------
    DataValidationError
        When some body with spend hosts no site, so the status quo is undefined.
    """
    return status_quo_evaluation(instance).total


def status_quo_evaluation(instance: Instance) -> Evaluation:
    """The status quo re-costed: :func:`status_quo_groupings`, the sites of status ``open`` open.

    Raises
    ------
    DataValidationError
        When some body with spend hosts no site, so the status quo is undefined.
    """
    grouping = status_quo_groupings(instance)
    if grouping["site_id"].isna().any():
        missing = sorted(grouping.loc[grouping["site_id"].isna(), "body_id"].unique())[:10]
        raise DataValidationError(
            [f"(sites.csv) | the status quo needs every body to host a site; not: {missing}"]
        )
    return evaluate(instance, grouping, status_open(instance))


def status_quo_groupings(instance: Instance) -> pd.DataFrame:
    """Every body buying alone, through the site it hosts (the curve's status quo).

    A body that hosts no site has no ``site_id`` (NaN).

    Examples
    --------
    >>> import optimizer
    >>> status_quo_groupings(optimizer.load("toy")).head(2).values.tolist()
    [['a1', 'care', 'a1'], ['a1', 'ict', 'a1']]
    """
    sites = instance.sites.reset_index()
    host = sites[sites["body_id"] != ""].drop_duplicates("body_id").set_index("body_id")
    grouping = instance.spend[["body_id", "category"]].copy()
    grouping["site_id"] = grouping["body_id"].map(host["site_id"])
    return grouping[GROUPING_COLUMNS].reset_index(drop=True)


def level_tasks(solver: LevelSolver, levels: list[int], ahead: int = 0) -> Iterator[LevelTask]:
    """Each level (most agencies first) with its start, as the downward pass reaches it.

    A generator: the workers start on the first levels while the pass goes
    on down (on uk-councils the pass takes about 4 s, longer than a worker
    takes to start). Levels the pass never reaches start from nothing here;
    the solver starts them from a level it finished above
    (:meth:`LevelSolver.nearby`), if any.

    With ``ahead``, the lowest feasible level goes out ahead of the
    ``ahead`` levels just above it (:func:`lowest_early`): it is the slowest
    to solve, and handed out last it alone would set the wall time. The
    fewest feasible agencies (a set cover, about 1 s on uk-councils) are
    found after the first level is out.
    """
    if not levels:
        return
    start = _PassStarts(solver, levels, pass_budget(solver.options.time_limit, len(levels)))
    yield LevelTask(levels[0], start(levels[0]))
    rest = levels[1:]
    if ahead and rest:
        rest = lowest_early(rest, _fewest(solver), ahead)
    for level in rest:
        yield LevelTask(level, start(level))


def lowest_early(levels: list[int], fewest: int, ahead: int) -> list[int]:
    """``levels`` (most agencies first), the lowest from ``fewest`` up moved ``ahead`` places up.

    Examples
    --------
    >>> lowest_early([282, 208, 153, 113, 84, 62, 46, 34, 25], fewest=41, ahead=3)
    [282, 208, 153, 46, 113, 84, 62, 34, 25]
    """
    feasible = [i for i, k in enumerate(levels) if k >= fewest]
    if not feasible:
        return levels
    i = feasible[-1]
    j = max(0, i - ahead)
    return [*levels[:j], levels[i], *levels[j:i], *levels[i + 1 :]]


def _fewest(solver: LevelSolver) -> int:
    """The fewest feasible agencies; one more than the sites when no level is feasible."""
    try:
        return solver.smallest_level(solver.options.time_limit)
    except InfeasibleError:
        return solver.st.n_sites + 1


class _PassStarts:
    """The downward pass's grouping at each level, the pass run only as far as asked.

    The pass works for :func:`pass_budget` of the levels at most. A level
    below where it stopped starts from the last grouping it reached (or the
    last level so started) with the sites it estimates cheapest to close
    closed at once (:func:`optimizer.heuristics.drop_sites`): one estimate
    and one assignment a level, where the pass takes one per site closed.
    None when that leaves some client unreached.
    """

    def __init__(self, solver: LevelSolver, levels: list[int], budget: float | None) -> None:
        self.solver = solver
        self.steps = downward_steps(solver, min(levels), set(levels), budget, last=True)
        self.found: dict[int, Assignment] = {}
        self.at: float = math.inf  # the last level the pass reached
        self.last: Assignment | None = None  # the grouping with the fewest sites so far

    def __call__(self, level: int) -> Assignment | None:
        """The pass's grouping at ``level``; a jump from the last one when it stopped above."""
        while self.at > level:
            step = next(self.steps, None)
            if step is None:
                self.at = -math.inf
                break
            self.at = step[0]
            self.found[step[0]] = self.last = step[1]
        found = self.found.pop(level, None)
        if found is None and self.last is not None and len(self.last.open_sites) > level:
            locked, _ = self.solver.swap_limits()
            count = len(self.last.open_sites) - level
            found = drop_sites(self.solver.assigner, self.last, count, locked)
            self.last = found or self.last
        return found


def downward_pass(
    solver: LevelSolver, lowest: int, wanted: set[int], budget: float | None = None
) -> dict[int, Assignment]:
    """Incumbents for the wanted levels from one greedy drop pass from all sites open."""
    return dict(downward_steps(solver, lowest, wanted, budget))


def pass_budget(time_limit: float | None, levels: int) -> float | None:
    """Seconds the downward pass may work: ``PASS_SHARE`` of the levels' time limits together.

    None (no budget) without a time limit. Each drop of the pass re-prices
    every client at every open site: on a 2,000-body synthetic instance
    (2,000 sites, 10,297 clients) the first 30 drops took 1.05 s each and
    the 8 swaps at one level 13.7 s, so a pass down to level 200 would take
    most of an hour; the levels it does not reach start from a jump from
    its last grouping (:class:`_PassStarts`), else from a covering MIP's
    grouping (:meth:`LevelSolver.solve`, given no start). On uk-councils
    the whole pass takes about 4 s, well within any budget.

    Examples
    --------
    >>> pass_budget(30.0, 16), pass_budget(None, 16)
    (48.0, None)
    """
    if time_limit is None:
        return None
    return PASS_SHARE * time_limit * max(1, levels)


def downward_steps(
    solver: LevelSolver,
    lowest: int,
    wanted: set[int],
    budget: float | None = None,
    last: bool = False,
    swap_levels: int | None = None,
) -> Iterator[tuple[int, Assignment]]:
    """The downward pass, level by level: each wanted level it reaches, with its grouping.

    The pass stops once it has worked ``budget`` seconds (its own time: not
    the time its consumer spends between two levels); the levels below
    where it stopped get no grouping from it (:func:`pass_budget`). With
    ``last``, the grouping where it stopped comes last, wanted or not.
    ``swap_levels`` (None: ``SWAP_LEVELS``) caps the levels improved by swaps.

    At most ``SWAP_LEVELS`` of the wanted levels, spread evenly, are improved
    by ``SWAP_MOVES`` swaps; the others keep the greedy grouping. Swaps cost
    about 0.3 s a level on uk-councils, and the exact solve improves every
    start anyway, so on a dense set (``--levels all``) they would hold the
    workers back by minutes for little gain.
    """
    st, assigner = solver.st, solver.assigner
    watch = _Stopwatch(budget)
    open_mask = ~st.fixed_closed
    current = assigner.assign(open_mask)
    locked, banned = solver.swap_limits()
    ordered = sorted(wanted, reverse=True)
    cap = SWAP_LEVELS if swap_levels is None else swap_levels
    swapped = set(ordered[:: max(1, math.ceil(len(ordered) / max(cap, 1)))]) if cap else set()
    given = None  # the last level yielded
    while current is not None and int(open_mask.sum()) >= lowest and not watch.out():
        given = int(open_mask.sum())
        if given in swapped:
            found = swap_search(
                assigner, current, locked, banned, watch.deadline(), moves=SWAP_MOVES
            )
            with watch.paused():
                yield given, found
        elif given in wanted:
            with watch.paused():
                yield given, current
        else:
            given = None
        step = drop_site(assigner, current, open_mask, locked)
        if step is None:
            break
        current, open_mask = step
    reached = int(open_mask.sum())
    if last and current is not None and given != reached and reached >= lowest:
        yield reached, current


def solve_one(
    instance: Instance,
    level: int | None,
    options: SolverOptions,
    *,
    keep_open: Iterable[str] = (),
    keep_closed: Iterable[str] = (),
    listener: LevelListener | None = None,
) -> SolveResult:
    """One level as ``consolidate solve`` runs it, within ``options.time_limit`` in all.

    The downward pass first gives a grouping (:func:`greedy_start`, for
    :func:`pass_budget` of one level): with the number of agencies free it
    is the start; at a level it is kept aside and returned if the solve,
    which runs as a level alone does (a covering MIP's start, its LP's
    rounding), finds nothing better in its time. So a solve stopped by its
    time limit still has a grouping (the compact model's instances, with
    capacities or whole-body buying, excepted: the heuristics ignore those
    rules). ``listener`` is told each phase, the best total and the bound
    (:attr:`LevelSolver.listener`).
    """
    began = clock()
    solver = LevelSolver(instance, options, keep_open=keep_open, keep_closed=keep_closed)
    solver.listener = listener
    greedy = None
    if not solver.compact:
        solver.tell("greedy pass", None, -math.inf)
        greedy = greedy_start(solver, level, pass_budget(options.time_limit, 1))
    limit = options.time_limit
    left = None if limit is None else max(0.01, limit - (clock() - began))
    if level is None:
        return solver.solve(None, greedy, left)
    return solver.solve(level, None, left, fallback=greedy)


def greedy_start(solver: LevelSolver, level: int | None, budget: float | None) -> Assignment | None:
    """A grouping at ``level`` from the downward pass run for ``budget`` seconds at most.

    With ``level`` None (the number of agencies free), the cheapest grouping
    the pass met, with no swaps (which would spend the budget at the
    highest levels: on uk-councils, swaps at 24 levels from 382 down kept
    the pass above level 350 in its 3 s). A pass stopped above ``level``
    jumps there as the curve's does (:class:`_PassStarts`).
    """
    if level is None:
        every = set(range(1, solver.st.n_sites + 1))
        steps = downward_steps(solver, 1, every, budget, True, swap_levels=0)
        found = None
        for _, grouping in steps:
            found = better(found, grouping)
        return found
    return _PassStarts(solver, [level], budget)(level)


class _Stopwatch:
    """The time a generator has spent in its own work, against a budget (None: no budget)."""

    def __init__(self, budget: float | None) -> None:
        self.budget = math.inf if budget is None else budget
        self.spent = 0.0
        self.mark = clock()

    def out(self) -> bool:
        """Whether the budget is spent."""
        return self.spent + clock() - self.mark >= self.budget

    def deadline(self) -> float:
        """The :func:`clock` time at which the budget runs out, if nothing pauses."""
        return self.mark + self.budget - self.spent

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop counting (while the generator waits at a ``yield``)."""
        self.spent += clock() - self.mark
        try:
            yield
        finally:
            self.mark = clock()


class _Levels:
    """What every level task shares: the instance, the options and the status quo.

    Each thread that solves levels keeps one :class:`LevelSolver`, so its cuts
    carry over between the levels it is given; solvers are never pickled, a
    worker builds its own on first use.
    """

    def __init__(self, instance: Instance, options: CurveOptions, quo: float) -> None:
        self.instance, self.options, self.quo = instance, options, quo
        self._local = threading.local()

    def solver(self) -> LevelSolver:
        """The calling thread's solver, built on first use."""
        if not hasattr(self._local, "solver"):
            self._local.solver = LevelSolver(
                self.instance,
                self.options.solver,
                keep_open=self.options.keep_open,
                keep_closed=self.options.keep_closed,
            )
        solver: LevelSolver = self._local.solver
        return solver

    def for_workers(self) -> _Levels:
        """A copy for worker processes: one solver thread each unless ``threads`` is set.

        Workers share the CPUs; HiGHS's own threads on top would oversubscribe them.
        """
        solver = self.options.solver
        if solver.threads is not None:
            return self
        options = replace(self.options, solver=replace(solver, threads=1))
        return _Levels(self.instance, options, self.quo)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


def _level_task(shared: _Levels, task: LevelTask) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Solve one level from its incumbent: its row, and its grouping when there is one."""
    level = task.level
    began = clock()
    try:
        result = shared.solver().solve(level, task.start, afresh=task.afresh)
    except InfeasibleError as err:
        return _empty_row(level, "infeasible", str(err), clock() - began), None
    except NoGroupingError as err:
        row = _empty_row(level, "no_solution", str(err), clock() - began)
        row["lower_bound"] = err.bound
        return row, None
    return curve_row(shared.instance, result, shared.quo, clock() - began), result.groupings


def _persist(out: Path, row: dict[str, Any], groupings: pd.DataFrame | None) -> None:
    """Write a finished level: its grouping first, then its row (which marks it done).

    A level written before (its first try) is unmarked first, so a run
    stopped between the two writes never pairs a row with another grouping.
    """
    level = row["level"]
    marker = out / "levels" / f"level-{level}.json"
    if groupings is not None:
        marker.unlink(missing_ok=True)
        write_groupings(out / "groupings" / f"level-{level}.csv", groupings)
    write_json(marker, row)


def curve_row(
    instance: Instance, result: SolveResult, quo: float, seconds: float
) -> dict[str, Any]:
    """One row of ``curve.csv`` from a level's result."""
    b = result.breakdown
    row: dict[str, Any] = {
        "level": result.level,
        "total": b["total"],
        "agencies": b["agencies"],
        "desks": b["desks"],
        "purchases": b["purchases"],
        "distance": b["distance"],
        "savings": quo - b["total"],
        "savings_pct": 100.0 * (quo - b["total"]) / quo if quo else math.nan,
        "lower_bound": result.bound,
        "gap": result.gap,
        "status": result.status,
        "seconds": seconds,
        "discounts": b["savings"],
        "gap_gbp": result.gap_gbp,
        IDLE: idle_sites(result),
    }
    nations = instance.sites.loc[result.open_sites, "nation"].value_counts()
    every = [*instance.bodies["nation"], *instance.sites["nation"]]
    for nation, column in nation_columns(every).items():
        row[column] = int(nations.get(nation, 0))
    return row


def nation_columns(nations: Iterable[str]) -> dict[str, str]:
    """The ``agencies_in_<nation>`` column of each nation, in sorted order, each its own.

    The nation's name lower-cased, each run of other characters than a-z
    and 0-9 made one ``_``. Names that come out the same are numbered in
    sorted order: the first keeps the column, the next get ``_2``, ``_3``.

    Examples
    --------
    >>> for nation, column in nation_columns(["North-Land", "North Land", "Wales"]).items():
    ...     print(nation, column)
    North Land agencies_in_north_land
    North-Land agencies_in_north_land_2
    Wales agencies_in_wales
    """
    columns: dict[str, str] = {}
    for nation in sorted(set(nations)):
        base = f"agencies_in_{_slug(nation) or 'nation'}"
        column, n = base, 1
        while column in columns.values():
            n += 1
            column = f"{base}_{n}"
        columns[nation] = column
    return columns


def idle_sites(result: SolveResult) -> list[str]:
    """The level's open agencies that buy for no one (in no row of its grouping).

    Such an agency exists only where the level asks for more agencies than
    can be given members, e.g. a site hosted by a body with no spend, open
    at the status quo's level. A groupings file cannot name it (it has no
    row), so the level's row in ``levels/level-K.json`` does, and whatever
    re-costs or restarts from the grouping opens it too.
    """
    used = set(result.groupings["site_id"])
    return [s for s in result.open_sites if s not in used]


def _empty_row(level: int, status: str, reason: str, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys([*CURVE_COLUMNS, "gap_gbp"], math.nan)
    row.update(level=level, status=status, seconds=seconds, reason=reason)
    return row


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# ------------------------------------------------------------------ run folder


def fingerprint(instance: Instance, options: CurveOptions) -> dict[str, Any]:
    """What a run depends on: a hash of the instance, and the options."""
    digest = hashlib.sha256()
    for frame in (instance.bodies, instance.sites, instance.spend):
        digest.update(frame.to_csv().encode())
    digest.update(np.ascontiguousarray(instance.distances).tobytes())
    digest.update(repr(instance.model).encode())
    solver = asdict(options.solver)
    return {
        "instance": digest.hexdigest(),
        "options": {
            "solver": solver,
            "keep_open": list(options.keep_open),
            "keep_closed": list(options.keep_closed),
        },
    }


def _prepare(
    instance: Instance,
    options: CurveOptions,
    out: Path | None,
    resume: bool,
    inputs: dict[str, str] | None = None,
) -> dict[int, dict[str, Any]]:
    """Check or create the run folder; return the rows already finished there."""
    if out is None:
        return {}
    stamp = fingerprint(instance, options)
    record = out / "run.json"
    if claim_folder(record, stamp, resume, "run", "the inputs or options"):
        write_json(record, stamp if inputs is None else {**stamp, "inputs": inputs})
    return _finished(out, options.levels)


def _finished(out: Path, levels: Iterable[int]) -> dict[int, dict[str, Any]]:
    done = {}
    for k in levels:
        path = out / "levels" / f"level-{k}.json"
        grouping = out / "groupings" / f"level-{k}.csv"
        if path.exists():
            row = read_row(path.read_text(encoding="utf-8"))
            if row.get("status") in EMPTY or grouping.exists():
                done[k] = row
    return done


def _write_progress(out: Path, rows: list[dict[str, Any]], quo: float, seconds: float) -> None:
    frame = Curve(rows, quo).to_frame()
    extra = [c for c in frame.columns if c not in CURVE_COLUMNS and c != "gap_gbp"]
    frame = frame[CURVE_COLUMNS + extra + ["gap_gbp"]]
    atomic_write_text(out / "curve.csv", frame.to_csv(index=False, lineterminator="\n"))
    write_json(out / "summary.json", curve_summary(frame, quo, seconds))


def curve_summary(frame: pd.DataFrame, quo: float, seconds: float) -> dict[str, Any]:
    """The run's summary: status quo, the recommended level, those tied with it or within 1%.

    The lowest total is the best; the levels tied with it
    (:func:`tied_levels`) are those whose proven bound does not rule out
    that their own optimum is at least as low. The recommended level is
    the fewest agencies among them.

    Examples
    --------
    >>> frame = pd.DataFrame({"level": [30, 25, 20], "total": [110.0, 100.0, 100.008],
    ...     "lower_bound": [109.0, 99.995, 99.999], "gap": [0.009, 5e-5, 9e-5],
    ...     "status": ["optimal"] * 3})
    >>> summary = curve_summary(frame, 120.0, 1.0)
    >>> summary["recommended_level"], summary["tied_levels"], summary["lowest_total_level"]
    (20, [25, 20], 25)
    """
    solved = frame[~frame["status"].isin(EMPTY)]
    summary: dict[str, Any] = {
        "status_quo_total": quo,
        "levels": len(frame),
        "seconds": seconds,
        "versions": versions(),
    }
    if len(solved):
        lowest = solved.sort_values(["total", "level"]).iloc[0]
        tied = tied_levels(solved)
        best = solved[solved["level"] == min(tied)].iloc[0]
        near = solved[solved["total"] <= lowest["total"] * 1.01]["level"]
        summary.update(
            recommended_level=int(best["level"]),
            recommended_total=float(best["total"]),
            recommended_savings=float(quo - best["total"]),
            lowest_total_level=int(lowest["level"]),
            tied_levels=tied,
            within_1pct=sorted(int(k) for k in near),
            worst_gap=float(solved["gap"].max()),
            worst_gap_gbp=float((solved["total"] - solved["lower_bound"]).max()),
        )
    return summary


def tied_levels(solved: pd.DataFrame) -> list[int]:
    """The levels that could be the cheapest (bound at most the lowest total), most first.

    A level is proven only within its gap: one whose ``lower_bound`` is at
    or below the lowest total of all levels may have an optimum as low, so
    the two are tied and no run can tell them apart at that gap (a resumed
    run, or one on other workers, may find either lowest). The level with
    the lowest total is always among them. ``solved`` holds rows with a
    grouping.

    Examples
    --------
    >>> rows = pd.DataFrame({"level": [9, 8, 7], "total": [10.0, 10.0005, 10.3],
    ...                      "lower_bound": [9.999, 9.9995, 10.2]})
    >>> tied_levels(rows)
    [9, 8]
    """
    lowest = float(solved["total"].min())
    bound = solved["lower_bound"].astype(float).fillna(-math.inf)
    tied = solved[(bound <= lowest) | (solved["total"] <= lowest)]["level"]
    return sorted((int(k) for k in tied), reverse=True)
