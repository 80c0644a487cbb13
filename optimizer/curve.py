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
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from optimizer.engine import LevelSolver, SolveResult, check_bound, versions
from optimizer.errors import DataValidationError, InfeasibleError, NoGroupingError
from optimizer.evaluate import evaluate
from optimizer.executors import ExecutorOptions, completed, worker_count
from optimizer.heuristics import Assignment, drop_site, swap_search
from optimizer.instance import Instance
from optimizer.results import atomic_write_text, claim_folder, write_groupings, write_json
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
    spec: str, n_bodies: int, min_level: int | None = None, max_level: int | None = None
) -> list[int]:
    """Parse ``all``, ``default`` or a list such as ``380,200,100..90,50``.

    Examples
    --------
    >>> parse_levels("10,8..6", 20)
    [10, 8, 7, 6]
    >>> parse_levels("all", 6)
    [6, 5, 4]
    """
    text = spec.strip().lower()
    if text == "all":
        levels = list(range(n_bodies, min(LOWEST_DEFAULT, n_bodies) - 1, -1))
    elif text == "default":
        levels = default_levels(n_bodies)
    else:
        levels = sorted(
            {k for part in text.split(",") if part.strip() for k in _part(part)}, reverse=True
        )
    bad = [k for k in levels if not 1 <= k <= n_bodies]
    if bad:
        raise DataValidationError(
            [f"(--levels) | levels must be between 1 and {n_bodies}, got {bad[:5]}"]
        )
    low = min_level if min_level is not None else 1
    high = max_level if max_level is not None else n_bodies
    return [k for k in levels if low <= k <= high]


def _part(part: str) -> list[int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", part)
    if match is None:
        raise DataValidationError(
            [f"(--levels) | expected a number or a range like 100..90, got {part!r}"]
        )
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) else a
    return list(range(min(a, b), max(a, b) + 1))


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
        from optimizer.results import read_groupings

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
        ``levels/level-K.json``, ``run.json``, ``summary.json``.
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
        own, near = solver.solved[level], solver.nearby(level)
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
        self.total, self.began = total, began
        if on_level is not None:
            on_level(None, len(self.rows), total)

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

    Raises
    ------
    DataValidationError
        When some body with spend hosts no site, so the status quo is undefined.
    """
    host = instance.sites.reset_index().drop_duplicates("body_id").set_index("body_id")["site_id"]
    grouping = instance.spend[["body_id", "category"]].copy()
    grouping["site_id"] = grouping["body_id"].map(host)
    if grouping["site_id"].isna().any():
        missing = sorted(grouping.loc[grouping["site_id"].isna(), "body_id"].unique())[:10]
        raise DataValidationError(
            [f"(sites.csv) | the status quo needs every body to host a site; not: {missing}"]
        )
    return evaluate(instance, grouping).total


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
    start = _PassStarts(solver, levels)
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
        return solver.smallest_level()
    except InfeasibleError:
        return solver.st.n_sites + 1


class _PassStarts:
    """The downward pass's grouping at each level, the pass run only as far as asked."""

    def __init__(self, solver: LevelSolver, levels: list[int]) -> None:
        self.steps = downward_steps(solver, min(levels), set(levels))
        self.found: dict[int, Assignment] = {}
        self.at: float = math.inf  # the last level the pass reached

    def __call__(self, level: int) -> Assignment | None:
        """The pass's grouping at ``level``, or None when the pass stops above it."""
        while self.at > level:
            step = next(self.steps, None)
            if step is None:
                self.at = -math.inf
                break
            self.at = step[0]
            self.found[step[0]] = step[1]
        return self.found.pop(level, None)


def downward_pass(solver: LevelSolver, lowest: int, wanted: set[int]) -> dict[int, Assignment]:
    """Incumbents for the wanted levels from one greedy drop pass from all sites open."""
    return dict(downward_steps(solver, lowest, wanted))


def downward_steps(
    solver: LevelSolver, lowest: int, wanted: set[int]
) -> Iterator[tuple[int, Assignment]]:
    """The downward pass, level by level: each wanted level it reaches, with its grouping.

    At most ``SWAP_LEVELS`` of the wanted levels, spread evenly, are improved
    by ``SWAP_MOVES`` swaps; the others keep the greedy grouping. Swaps cost
    about 0.3 s a level on uk-councils, and the exact solve improves every
    start anyway, so on a dense set (``--levels all``) they would hold the
    workers back by minutes for little gain.
    """
    st, assigner = solver.st, solver.assigner
    open_mask = ~st.fixed_closed
    current = assigner.assign(open_mask)
    locked, banned = solver.swap_limits()
    ordered = sorted(wanted, reverse=True)
    swapped = set(ordered[:: max(1, math.ceil(len(ordered) / SWAP_LEVELS))])
    while current is not None and int(open_mask.sum()) >= lowest:
        level = int(open_mask.sum())
        if level in swapped:
            yield level, swap_search(assigner, current, locked, banned, moves=SWAP_MOVES)
        elif level in wanted:
            yield level, current
        step = drop_site(assigner, current, open_mask, locked)
        if step is None:
            break
        current, open_mask = step


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
    for nation in sorted(instance.bodies["nation"].unique()):
        row[f"agencies_in_{_slug(nation)}"] = int(nations.get(nation, 0))
    return row


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
            row = json.loads(path.read_text(encoding="utf-8"))
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
    """The run's summary: status quo, the recommended level and those within 1% of it."""
    solved = frame[~frame["status"].isin(EMPTY)]
    summary: dict[str, Any] = {
        "status_quo_total": quo,
        "levels": len(frame),
        "seconds": seconds,
        "versions": versions(),
    }
    if len(solved):
        best = solved.sort_values(["total", "level"]).iloc[0]
        near = solved[solved["total"] <= best["total"] * 1.01]["level"]
        summary.update(
            recommended_level=int(best["level"]),
            recommended_total=float(best["total"]),
            recommended_savings=float(quo - best["total"]),
            within_1pct=sorted(int(k) for k in near),
            worst_gap=float(solved["gap"].max()),
            worst_gap_gbp=float((solved["total"] - solved["lower_bound"]).max()),
        )
    return summary
