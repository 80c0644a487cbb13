"""Solve one consolidation level: validate, build, solve, extract, check.

The orchestrator reads like the pipeline: pre-checks raise
:class:`InfeasibleError` before any solve, the formulation is built from
arrays (:mod:`optimizer.formulation`), solved (:mod:`optimizer.solve`), and
the grouping it returns is re-costed by the reference evaluator; a mismatch
beyond 1e-6 relative is a :class:`SolverError`.

A level of the Benders path runs: the proof that the level is not too few
(a covering grouping at the level, else the set cover of
:meth:`LevelSolver.smallest_level`); a start (the better of the
caller's and the grouping of the nearest level this solver finished above,
sites dropped: :meth:`LevelSolver.nearby`; else a covering MIP's), whose
cuts join the master's first ones (those tight with every site open); the
purge of cuts long idle; LP rounds of cut separation
(in-out about the covering MIP's grouping, for a solver's first level if
given no start: :meth:`LevelSolver._in_out`);
rounding of the LP, for a level given no start (:meth:`LevelSolver.round_lp`);
the MIP over what the LP leaves undecided (:meth:`LevelSolver.rens`); swaps
(:func:`optimizer.heuristics.swap_search`; before RENS where the LP leaves
many agencies undecided); RENS again if its MIP ran out of time; fixing by
the LP's reduced costs; then branch and Benders cut on the master LP
(:mod:`optimizer.branching`) until the gap is within ``gap`` or time runs
out. Every MIP stops as soon as it holds a grouping within ``gap``
of the level's bound. Every optimal LP at any level leaves a tangent bound
valid at every level (:meth:`LevelSolver.tangent_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from optimizer.branching import BranchAndCut
from optimizer.errors import DataValidationError, InfeasibleError, NoGroupingError, SolverError
from optimizer.evaluate import Evaluation, evaluate
from optimizer.formulation import (
    TOLERANCE,
    CutLists,
    MatrixModel,
    Rows,
    Structure,
    build_compact,
    build_master,
    cut_lists,
    level_bounds,
    never_open,
    separate,
    shortfall,
    structure,
)
from optimizer.heuristics import (
    Assigner,
    Assignment,
    add_site,
    better,
    drop_site,
    swap_search,
)
from optimizer.instance import Instance
from optimizer.solve import Proof, SolverOptions, backend, clock, to_pulp

LP_ROUNDS = 500
MIP_ROUNDS = 200
PURGE_AGE = 8  # a cut no optimal LP priced in this many solves in a row leaves the master
# Cuts in the master beyond which each LP round drops the slack ones: below a few
# thousand, HiGHS re-solves the LP in milliseconds and dropping only changes the path.
DROP_FROM = 5000
NODE_DROP_FROM = 4000  # the same for branch and cut's node LPs (see _exact)
STABILITY = 0.5  # the centre's share of the points the LP rounds cut at (in-out separation)
RESCUE_GAP = 1e-3  # a start RENS leaves further from the bound than this gets the rounding
ROUND_TIME = 1.0  # s at least for the covering MIPs that round an LP or start a level
POLISH_SHARE = 0.7  # of the time left after the LP phase, for RENS or swaps before branching
# s at least for RENS (within POLISH_SHARE); at most for the swaps before and after RENS
NEIGHBOURHOOD_TIME = 5.0
RENS_GAP_SHARE = 0.5  # of the gap, for RENS's MIP (which stops sooner within the level's gap)
Listener = Callable[[str, float, float], None]  # (phase, best total or inf, bound) as a level runs
WHOLE_BODY = "the whole-body rule (split_categories = false)"  # as infeasibility messages name it
COVER_TIME_LIMIT = 60.0  # s; on a time-out the cover's bound still proves the levels below
CHECK_TOLERANCE = 1e-6
BOUND_TOLERANCE = 1e-9  # relative: a bound further above a grouping's total is a bug
RENS_SITES = 80  # agencies the LP leaves fractional, beyond which swaps run before RENS
BRANCH_GAP = 1.1  # gaps: a level within this many of its bound goes to branch and cut, not RENS
NEARBY = 8  # levels above a level whose grouping, dropped down, may start it
NEARBY_SHARE = 0.2  # of a level's time limit, for the walks from the levels near it
LP_SETTLED = 0.01  # of the gap: LP rounds stop once more cuts could raise the bound less
SETTLED_GAP = 1e-3  # the gaps from which they stop so (at tighter ones they run to the end)


@dataclass(frozen=True)
class SolveResult:
    """The grouping found at one level and the proof of how good it is.

    Attributes
    ----------
    level : int
        Number of open agencies.
    status : str
        ``optimal`` (proven within the requested gap), ``time_limit`` (stopped
        by the time limit; ``gap`` says how good the grouping is).
    objective : float
        The grouping's total cost, GBP/yr, as the evaluator computes it.
    bound : float
        A proven lower bound on the cost of any grouping at this level.
    gap : float
        ``(objective - bound) / max(objective - floor, 1)``: relative to the
        decision cost (:class:`optimizer.solve.Proof`).
    seconds : dict
        ``build``, ``solve`` and ``total`` wall seconds.
    groupings : DataFrame
        ``body_id, category, site_id``.
    evaluation : Evaluation
        The evaluator's breakdown of the grouping.
    iterations, cuts, nodes : int
        LPs and MIPs solved, Benders cuts added, branch-and-cut nodes searched.
    """

    level: int
    status: str
    objective: float
    bound: float
    gap: float
    seconds: dict[str, float]
    solver: str
    formulation: str
    groupings: pd.DataFrame = field(repr=False)
    evaluation: Evaluation = field(repr=False)
    iterations: int = 0
    cuts: int = 0
    nodes: int = 0

    @property
    def gap_gbp(self) -> float:
        """``objective - bound``, GBP/yr: how much better any grouping at this level can be."""
        return self.objective - self.bound

    @property
    def breakdown(self) -> dict[str, float]:
        """The cost breakdown (agencies, desks, purchases, savings, distance, total)."""
        return self.evaluation.breakdown

    @property
    def open_sites(self) -> list[str]:
        """The open agencies' site ids."""
        return self.evaluation.open_sites

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (``summary.json``)."""
        return {
            "level": self.level,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "gap_gbp": self.gap_gbp,
            "breakdown": self.breakdown,
            "open_sites": self.open_sites,
            "seconds": self.seconds,
            "solver": self.solver,
            "formulation": self.formulation,
            "iterations": self.iterations,
            "cuts": self.cuts,
            "nodes": self.nodes,
            "versions": versions(),
        }

    def to_frame(self) -> pd.DataFrame:
        """The level as one row named like ``curve.csv``'s columns (no status-quo savings).

        Examples
        --------
        >>> import optimizer
        >>> optimizer.solve_level(optimizer.load("toy"), 3).to_frame()[["level", "total", "status"]]
           level     total   status
        0      3  467146.0  optimal
        """
        b = self.breakdown
        row: dict[str, Any] = {"level": self.level, "total": self.objective}
        row.update({term: b[term] for term in ("agencies", "desks", "purchases", "distance")})
        row.update(lower_bound=self.bound, gap=self.gap, status=self.status)
        row.update(seconds=self.seconds["total"], discounts=b["savings"], gap_gbp=self.gap_gbp)
        return pd.DataFrame([row])

    def plot(self, instance: Instance, ax: Any = None) -> Any:
        """Map the grouping on ``instance`` (:func:`optimizer.plot.plot_map`); return the Axes."""
        from optimizer.plot import plot_map

        return plot_map(instance, self.groupings, ax, open_sites=self.open_sites)


def versions() -> dict[str, str]:
    """Versions of this package and the solver stack."""
    names = (
        "procurement-consolidation-optimizer",
        "highspy",
        "pulp",
        "numpy",
        "pandas",
        "networkx",
    )
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def site_mask(instance: Instance, ids: Iterable[str], option: str) -> np.ndarray:
    """Boolean site mask for ids given on the command line; unknown ids are bad input."""
    ids = [i for i in ids if i]
    unknown = [i for i in ids if i not in instance.sites.index]
    if unknown:
        raise DataValidationError([f"({option}) | unknown site id {i!r}" for i in unknown])
    return np.asarray(instance.sites.index.isin(ids), dtype=bool)


def solve_level(
    instance: Instance,
    level: int | None,
    options: SolverOptions | None = None,
    *,
    keep_open: Iterable[str] = (),
    keep_closed: Iterable[str] = (),
    start: Iterable[str] | pd.DataFrame | None = None,
) -> SolveResult:
    """Return the optimal grouping with ``level`` agencies, with its proof.

    Parameters
    ----------
    instance : Instance
        The validated data and model.
    level : int or None
        The number of agencies; None lets the model choose ("best").
    options : SolverOptions, optional
        Solver, time limit, gap and threads.
    keep_open, keep_closed : iterable of str
        Site ids forced open or closed (on top of ``sites.csv``'s ``status``).
    start : iterable of str or DataFrame, optional
        A known grouping to warm-start from: its table (``body_id, category,
        site_id``, priced exactly as it is) or its open site ids (priced by
        :meth:`LevelSolver.priced`). The result is never worse than the
        start as priced.

    Raises
    ------
    InfeasibleError
        When no grouping meets every rule at this level.
    SolverError
        When the solver fails or the evaluator contradicts it.

    Examples
    --------
    >>> import optimizer
    >>> result = solve_level(optimizer.load("toy"), 3)
    >>> result.status, result.objective
    ('optimal', 467146.0)
    """
    check_level_number(level)
    solver = LevelSolver(instance, options, keep_open=keep_open, keep_closed=keep_closed)
    hint = None if start is None else solver.priced(start)
    if hint is not None and level is not None and len(hint.open_sites) != level:
        raise DataValidationError(
            [f"(start) | the start opens {len(hint.open_sites)} agencies, not {level}"]
        )
    return solver.solve(level, hint)


class LevelSolver:
    """Solves levels of one instance, keeping the Benders master and its cuts between them.

    Benders cuts do not depend on the level, so a sweep over levels re-uses
    every cut found so far; only the bounds of the level row change.
    """

    def __init__(
        self,
        instance: Instance,
        options: SolverOptions | None = None,
        *,
        keep_open: Iterable[str] = (),
        keep_closed: Iterable[str] = (),
    ) -> None:
        began = clock()
        self.instance = instance
        self.options = options or SolverOptions()
        self.opened = site_mask(instance, keep_open, "--keep-open")
        self.closed = site_mask(instance, keep_closed, "--keep-closed")
        precheck(instance, None, self.opened, self.closed)
        self.st = structure(instance, self.opened, self.closed)
        self.proof = proof_of(instance, self.options)
        self.assigner = Assigner(instance, self.st)
        self.whole_body = not instance.model.scenario.split_categories
        self.compact = self.whole_body or bool(np.isfinite(self.st.site_capacity).any())
        self.master: Any = None
        self.lists: CutLists
        self.tangents: list[tuple[int, float, float]] = []
        self.last_lp: tuple[float, np.ndarray, np.ndarray | None] | None = None
        self.fresh = True  # no LP rounds run yet: the master holds only its first cuts
        self.solved: dict[int, Assignment] = {}  # the best grouping found at each level
        self.polished: Assignment | None = None  # the last grouping all swaps improved
        self.fewest: int | None = None
        self.covered: tuple[int, Assignment] | None = None  # proved a level feasible; its start
        self.coverage: sp.csr_matrix | None = None
        self.listener: Listener | None = None  # told each phase, best and bound (solve's progress)
        self.prepared = clock() - began

    def tell(self, phase: str, best: Assignment | None, bound: float) -> None:
        """Report the phase a level is in, its best total so far and its bound to ``listener``."""
        if self.listener is not None:
            self.listener(phase, math.inf if best is None else best.cost, bound)

    def solve(
        self,
        level: int | None,
        start: Assignment | None = None,
        time_limit: float | None = None,
        afresh: bool = False,
        fallback: Assignment | None = None,
    ) -> SolveResult:
        """Solve one level, warm-started from ``start``; raise InfeasibleError if none exists.

        Unless ``afresh``, the start is the better of ``start`` and the
        nearest levels solved before (:meth:`nearby`); ``afresh`` with no
        start, the level starts from its LP's rounding, as a level solved
        alone does (the cuts of the levels before are kept either way).
        ``fallback`` is a grouping at the level that does not steer the
        search but is returned if nothing better is found (the Benders
        path only: the compact model's capacities and whole-body rule are
        not the heuristics'). The bound is never below :meth:`floor_bound`.
        """
        began = clock()
        limit = self.options.time_limit if time_limit is None else time_limit
        check_level_number(level)
        precheck(self.instance, level, self.opened, self.closed)
        _check_must_open(self.instance, self.st, level)
        forced = self.everyone_at_home(level)
        if forced is not None:
            info: dict[str, Any] = {"formulation": "forced", "iterations": 0, "cuts": 0}
            info["solver"] = self.options.solver
            info["build"], self.prepared = self.prepared, 0.0
            return _result(
                self.instance, self.st, forced, forced.cost, "optimal", info, self.proof, began
            )
        alone = start is None and not self.solved  # as `consolidate solve` runs a level
        self.tell("feasibility", start, self.floor_bound(level))
        at_level = start is not None and len(start.open_sites) == level
        if (
            level is not None
            and not at_level
            and not self._feasible(level, alone, _remaining(limit, began))
        ):
            raise InfeasibleError(
                f"level {level} is too few: no {level} agencies can serve every body in every"
                f" category under the radius and nation rules; the fewest that can is {self.fewest}"
            )
        if self.compact:
            found = self._compact(level, limit, began)
        else:
            walks = None if limit is None else NEARBY_SHARE * limit
            given = start if afresh else better(start, self.nearby(level, walks))
            found = self._benders(level, given, limit, began)
        best, bound, status, stats = found
        bound = max(bound, self.floor_bound(level))
        if fallback is not None and not self.compact and better(best, fallback) is not best:
            best = fallback
            status = "optimal" if self.proof.holds(best.cost, bound) else "time_limit"
        if best is not None and level is not None:
            self.solved[level] = best
        stats["build"] = stats.get("build", 0.0) + self.prepared
        stats["solver"] = self.options.solver
        self.prepared = 0.0
        result = _result(self.instance, self.st, best, bound, status, stats, self.proof, began)
        if level is not None and result.level != level:
            raise SolverError(f"level {level} came back with {result.level} agencies open")
        return result

    def nearby(self, level: int | None, time_limit: float | None = None) -> Assignment | None:
        """A start from the nearest levels solved above and below ``level``; the cheaper.

        Levels at most ``NEARBY`` away count. The grouping above has sites
        dropped one at a time, each the one whose closure costs least
        (:func:`optimizer.heuristics.drop_site`); the one below has sites
        added, each the one whose opening gains most
        (:func:`optimizer.heuristics.add_site`). None when no such level was
        solved or each walk fails (a drop fails once every open site is the
        last reach of some client), or when the walks take longer than
        ``time_limit`` seconds together (each step re-prices every client
        at every open site: about 1 s a step at 2,000 open sites).

        A level's optimum with a site dropped is often within the gap of
        the next level's bound before any MIP runs: on uk-councils, levels
        150 to 120 in series took 48 s instead of 125 s, most of them
        proven by their LP rounds alone.
        """
        if level is None:
            return None
        above = min((k for k in self.solved if level < k <= level + NEARBY), default=None)
        below = max((k for k in self.solved if level - NEARBY <= k < level), default=None)
        deadline = math.inf if time_limit is None else clock() + time_limit
        return better(self._walk(above, level, deadline), self._walk(below, level, deadline))

    def _walk(self, source: int | None, level: int, deadline: float) -> Assignment | None:
        """The grouping solved at ``source`` taken to ``level`` a site at a time, or None.

        None as well once ``deadline`` (a :func:`clock` time) passes.
        """
        if source is None:
            return None
        current = self.solved[source]
        mask = current.mask(self.st.n_sites)
        locked, banned = self.swap_limits()
        for _ in range(abs(source - level)):
            if clock() >= deadline:
                return None
            if source > level:
                step = drop_site(self.assigner, current, mask, locked)
            else:
                step = add_site(self.assigner, current, mask, banned)
            if step is None:
                return None
            current, mask = step
        return current

    def assignment(self, table: pd.DataFrame, idle: Iterable[str] = ()) -> Assignment:
        """The grouping of a ``groupings`` table of this instance, as the heuristics hold it.

        One row per (body, category) with spend, in any order (a
        :class:`SolveResult`'s, or one read back from a run folder); sites
        forced open stay open, and so do the ``idle`` site ids (open agencies
        with no member, which the table cannot name: without them a level's
        grouping would come back with fewer agencies than its level).
        """
        st = self.st
        clients = pd.MultiIndex.from_arrays(
            [
                self.instance.bodies.index.to_numpy()[st.client_body],
                np.array(self.instance.categories)[st.client_cat],
            ]
        )
        rows = pd.MultiIndex.from_frame(table[["body_id", "category"]]).get_indexer(clients)
        sites = self.instance.sites.index.get_indexer(pd.Index(table["site_id"]))
        if len(table) != st.n_clients or (rows < 0).any() or (sites < 0).any():
            raise ValueError("not a groupings table of this instance")
        site = sites[rows]
        mask = st.must_open | site_mask(self.instance, idle, "idle_sites")
        mask[site] = True
        return Assignment(site, self.assigner.cost(site, mask), np.flatnonzero(mask))

    def priced(self, start: Iterable[str] | pd.DataFrame) -> Assignment:
        """A start given as a groupings table or as open site ids, priced as a grouping.

        A table (``body_id, category, site_id``) is priced exactly as it
        stands (:meth:`assignment`). Site ids say only which agencies open,
        not how each body buys: they are priced by the assignment heuristic
        (:meth:`Assigner.assign`), its band copies then improved with the
        sites fixed (:meth:`Assigner.refine`). On uk-councils, level 113's
        proven grouping cost GBP 48,656.1m as a table; its 113 site ids
        48,817.6m through the assignment alone and 48,668.0m refined (an
        exact pricing of the ids, a MIP over every band copy, had not
        finished in 30 s).

        Raises
        ------
        DataValidationError
            When the table is not a grouping of this instance, it opens a
            site that may not open or leaves a site forced open closed
            (:meth:`_check_start`), or no client can be served by the sites
            given.
        """
        if isinstance(start, pd.DataFrame):
            try:
                table = self.assignment(start)
            except (KeyError, ValueError) as err:
                raise DataValidationError([f"(start) | {err}"]) from None
            self._check_start(table.mask(self.st.n_sites))
            return table
        mask = site_mask(self.instance, start, "start")
        self._check_start(mask)
        found = self.assigner.assign(mask)
        if found is None:
            raise DataValidationError(["(start) | the start's sites do not reach every body"])
        return self.assigner.refine(found)

    def _check_start(self, mask: np.ndarray) -> None:
        """Refuse a start whose open sites (``mask``) break the sites forced open or closed.

        A site closed (``status`` closed, ``keep_closed``, or unfit to host
        its body) cannot be open in any grouping, and a site forced open
        (``status`` open, ``keep_open``) is open in every one: a start that
        says otherwise is no grouping of this instance.
        """
        names = self.instance.sites.index
        shut = names[mask & never_open(self.st)]
        left = names[self.st.fixed_open & ~mask]
        problems = [
            f"(start) | site {s!r} may not open (closed, kept closed or unfit to host its body)"
            for s in shut
        ]
        problems += [
            f"(start) | site {s!r} is forced open but the start leaves it shut" for s in left
        ]
        if problems:
            raise DataValidationError(problems)

    def floor_bound(self, level: int | None) -> float:
        """A lower bound on any grouping's total at ``level``, found without an LP.

        The sum of four terms, each a bound on its own: the ``level``
        cheapest fixed costs among the sites that may open (those that must
        open among them); one desk and band intercept per category, the
        least of the category's; and the larger of (a) each client's
        cheapest allowed option (:attr:`Structure.floor`: its best band's
        rate and its distance, no fixed costs) and (b) every category's
        whole spend priced as one agency's volume (the purchase cost is
        concave with no saving at zero, so no split buys it for less) plus
        each client's nearest allowed site. A level whose LP did not finish
        reports at least this, never ``-inf``.
        """
        st, a = self.st, self.assigner
        openable = ~never_open(st)
        must = st.must_open & openable
        count = max(1, int(must.sum())) if level is None else level
        others = np.sort(st.site_fixed[openable & ~must].astype(float))
        fixed = float(st.site_fixed[must].sum()) + float(others[: max(0, count - must.sum())].sum())
        desks = 0.0
        for c in np.unique(st.client_cat):
            least = float(st.copy_fixed[st.copy_cat == c].min(initial=0.0))
            desks += max(0.0, least)
        purchases = self.proof.floor  # every category's whole spend bought as one volume
        nearest = a.by_site.min(axis=0, initial=np.inf) - a.spend  # by_site's columns: a.order
        options = float(st.floor.sum())
        if np.isfinite(nearest).all():
            options = max(options, purchases + float(nearest.sum()))
        return fixed + desks + options

    def _master(self) -> Any:
        """The Benders master, built on first use with the cuts tight at every site open.

        Those cuts price every client where it buys with every site open; a
        master holding them besides the level's start swings less in its
        first LP rounds. On uk-councils from scratch, the LP rounds at level
        51 took 19 s instead of 27 s; at level 150, 10 s instead of 14 s.
        """
        if self.master is None:
            st = self.st
            self.lists = cut_lists(st)
            model = build_master(st, self.lists, None)
            self.level_row = model.level_row
            self.cut_row0 = model.matrix.shape[0]
            self.master = backend(model, self.options, keep_points=True, floor=self.proof.floor)
            everyone = self.assigner.assign(~never_open(st))
            if everyone is not None:
                self.seed(everyone)
        return self.master

    def _benders(
        self, level: int | None, start: Assignment | None, limit: float | None, began: float
    ) -> tuple[Assignment | None, float, str, dict[str, Any]]:
        """LP rounds, RENS, then RENS again or swaps, then branch and cut, while the gap is open.

        RENS runs only while the gap is wider than ``BRANCH_GAP`` gaps
        (:meth:`_rens_pays`). A RENS that runs out of time runs again at
        once, resuming with the cuts it added; otherwise (RENS searched its
        neighbourhood out, or did not run) swaps follow. With swaps between
        the two RENS runs, uk-councils level 237 from scratch spent 5 s on
        them (to 5.4e-4 above the bound, where the second RENS then reached
        1.0e-4); without, levels 237, 239 and 240 took 25.6, 11.7 and 11.6 s
        instead of 30.6, 16.5 and 16.7 s, and 16 other levels from 41 to 282
        ended with the same gaps and nodes, within 0.3 s (one run each).

        Swaps run before RENS when the LP leaves more than ``RENS_SITES``
        agencies fractional and the start is within ``RESCUE_GAP``: RENS's
        MIP then chooses among too many to finish in its time. On uk-councils
        the LP leaves 8 to 40 fractional above level 230 (RENS takes 0.2 to
        5 s), 77 at level 96 (1.4 s) and 94 to 105 at levels 41 to 48, where
        RENS's first 5 s mostly found nothing. With swaps first there,
        levels 41 to 48 of a ``--levels all`` run took 103 s instead of
        151 s (one run each). These swaps stop after ``NEIGHBOURHOOD_TIME``
        at most. Given as long as the level had taken so far, at level 60
        from scratch they ran 13.8 s, and RENS then closed the gap in 3.4 s.
        With the cap, levels 59, 60, 61, 64 and 66 took 20.5 to 23.1 s
        instead of 28.9 to 31.3 s (one run each).

        The swaps after RENS stop after ``NEIGHBOURHOOD_TIME`` as well. Given
        as long as the level had taken so far, at uk-councils level 237 from
        scratch (when they still ran between two RENS runs) they ran 11.4 s,
        to a grouping they had reached within 5 s.

        A start that RENS leaves more than ``RESCUE_GAP`` from the bound is
        replaced by the last LP's rounding when that is cheaper: RENS had
        found nothing at uk-councils level 81 of a ``--levels all`` run, swaps
        from the downward pass's grouping reached 2.9e-3, and branch and cut
        closed none of it in 30 s. With RENS switched off, levels 89 to 81
        reached 1.2e-4 or less through the rounding, instead of 2.8e-3 to
        3.1e-3.
        """
        built = clock()
        self._master()
        stats: dict[str, Any] = {
            "formulation": "benders",
            "iterations": 0,
            "cuts": 0,
            "dropped": 0,
            "build": clock() - built,
        }
        best, bound = self._lp_phase(level, start, limit, began, stats)
        if _out(limit, began):  # RENS, rounding and swaps each build or price before they stop
            return self._exact(level, best, bound, limit, began, stats)
        searched, proof = True, self.proof
        if best is not None and not proof.holds(best.cost, bound):
            if stats["dropped"]:  # the cuts tight at the incumbent, if the LP rounds dropped them
                stats["cuts"] += self.seed(best)
            if self._undecided() > RENS_SITES and _spread(best.cost, bound) <= RESCUE_GAP:
                best = self.polish(best, _swap_deadline(limit, began), proof.goal(bound))
        if best is not None and self._rens_pays(best.cost, bound):
            self.tell("RENS", best, bound)
            best, searched = self.rens(best, bound, _deadline(limit, began) - clock(), stats)
        far = (
            best is not None
            and not proof.holds(best.cost, bound)
            and _spread(best.cost, bound) > RESCUE_GAP
        )
        if far and start is not None and self.last_lp is not None and not _out(limit, began):
            best = self._rounded(self.last_lp[1], level, best, _remaining(limit, began), stats)
        if best is not None and self._rens_pays(best.cost, bound) and not searched:
            best, _ = self.rens(best, bound, _deadline(limit, began) - clock(), stats)
        elif best is not None and not proof.holds(best.cost, bound) and best is not self.polished:
            best = self.polish(best, _swap_deadline(limit, began), proof.goal(bound))
        return self._exact(level, best, bound, limit, began, stats)

    def rens(
        self, best: Assignment, bound: float, time_limit: float | None, stats: dict[str, Any]
    ) -> tuple[Assignment, bool]:
        """Improve ``best`` by the master MIP over what the last LP leaves undecided.

        Relaxation enforced neighbourhood search (Berthold 2014): every ``y``
        and ``w`` the LP sets to 0 or 1 is fixed there, and the MIP chooses
        the rest. At most levels the LP decides all but a few dozen agencies
        and their bands, so this MIP is small and solves in seconds, and it
        finds the sites and bands that swaps from a poorer start miss. Its
        bound holds in the neighbourhood only and is discarded; its Benders
        cuts hold everywhere and stay.

        Returns the better grouping and whether the neighbourhood is searched
        out (its MIP proved its best within the gap). If not (the MIP ran out
        of time), RENS again from the same LP resumes with the cuts it added.
        """
        if self.last_lp is None:
            return best, True
        st = self.st
        n = st.n_sites + st.n_copies
        lp = self.last_lp[1][:n]
        lo, hi = self.master.col_bounds(np.arange(n))
        decided = (lp <= TOLERANCE) | (lp >= 1.0 - TOLERANCE)
        cols = np.flatnonzero(decided & (lo < hi))
        fixed = np.round(lp[cols])
        start = _start_vector(st, self.lists, self.assigner, best)
        inside = bool(np.array_equal(start[cols], fixed))
        self.master.set_col_bounds(cols, fixed, fixed)
        self.master.relax(False)
        try:
            found, _, status, _ = self._mip_rounds(
                best if inside else None,
                bound,
                time_limit,
                clock(),
                stats,
                RENS_GAP_SHARE,
            )
        except InfeasibleError:  # the neighbourhood holds no grouping
            found, status = None, "optimal"
        finally:
            self.master.set_col_bounds(cols, lo[cols], hi[cols])
            self.master.relax(True)
        return better(best, found) or best, status == "optimal"

    def _rens_pays(self, cost: float, bound: float) -> bool:
        """Whether RENS runs: the gap is open and the last LP opens some agency outright.

        Agencies forced open do not count.

        RENS fixes what the LP decides. Where the LP opens no agency
        outright, its MIP is the level itself over every site the LP uses,
        with all of the LP's gap to close, and it proves nothing for the
        level. On OR-Library p-median instances with 5 or 10 medians (LP
        bounds 0.3% to 1% below the optimum, every open share fractional),
        RENS ran out of time without a better grouping in most; skipping it,
        pmed22, 26, 35, 38 and 39 took 5 to 21 s each instead of 10 to 39 s,
        and pmed36 65 s instead of 85 s (one run each). On uk-councils the
        LP opens 24 to 269 agencies outright at the default levels.

        Nor does RENS run once the gap is within ``BRANCH_GAP`` gaps. RENS
        can find groupings but proves nothing for the level, and there the
        first few nodes of branch and cut close the rest by raising the
        bound: on uk-councils from scratch, levels 42 and 48 were each
        proven after 7 nodes and 4 to 5.5 s, from groupings 1.07 and 1.04
        gaps above their LP bounds, after RENS had spent 55 s and 66 s
        finding nothing better.
        """
        if self.last_lp is None or self.proof.holds(cost, bound, BRANCH_GAP):
            return False
        opened = self.last_lp[1][: self.st.n_sites] >= 1.0 - TOLERANCE
        forced, _ = self.swap_limits()
        return bool((opened & ~forced).any())

    def _undecided(self) -> int:
        """How many agencies the last LP leaves fractional (RENS's MIP chooses among them)."""
        if self.last_lp is None:
            return 0
        y = self.last_lp[1][: self.st.n_sites]
        return int(((y > TOLERANCE) & (y < 1.0 - TOLERANCE)).sum())

    def polish(
        self, best: Assignment, deadline: float, target: float = -math.inf, wide: bool = True
    ) -> Assignment:
        """Improve a grouping by swaps (all, if need be and agencies can change band).

        Stops at a local optimum, at ``deadline`` or once the total is at
        most ``target`` (the cost the level's bound proves within the gap).
        Unless ``wide`` is False (stop at the first local optimum), the
        result is kept as ``polished``: swaps from it again find nothing.
        The swaps' estimates miss band changes only; with no band copies
        beyond the first, they are exact (OR-Library pmed18: 300 swaps
        sampled at the optimum, all within 1e-9). Trying every other swap
        at a local optimum found nothing on pmed14 and pmed18 in the 5 s it
        was given: the levels took 5.4 and 5.5 s, and 0.4 and 0.5 s without.
        """
        locked, banned = self.swap_limits()
        widen = wide and bool((self.st.copy_band > 0).any())
        found = swap_search(
            self.assigner, best, locked, banned, deadline, widen=widen, target=target
        )
        if wide:
            self.polished = found
        return found

    def swap_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Sites swaps never close (forced open) and never open (closed, or unfit to host)."""
        st = self.st
        return st.must_open | st.fixed_open, never_open(st)

    def _lp_phase(
        self,
        level: int | None,
        best: Assignment | None,
        limit: float | None,
        began: float,
        stats: dict[str, Any],
    ) -> tuple[Assignment | None, float]:
        """Cutting planes on the master LP at ``level``; the best grouping seen and the LP bound.

        Each round solves the LP, drops the cuts it leaves slack once the
        master holds more than ``DROP_FROM`` (the LP's optimum stays optimal
        without them, so its bound stands) and adds the cuts violated at its
        point, until none is. HiGHS's time per LP grows with the rows, and
        every MIP after this phase solves its root LP cold: at level 46 from
        scratch, the rounds took 55 s and left 20,000 rows; dropping, 27 s
        and 10,000 rows, to the same bound.

        A level given no start starts from a covering MIP's grouping and
        rounds the last LP (:meth:`round_lp`). A level given one (the
        downward pass's) skips the rounding, unless RENS then fails
        (:meth:`_benders`): RENS does better from the start alone. On
        uk-councils, levels 300 to 261 in series took 66 s instead of 88 s
        (median 1.1 s a level instead of 1.5 s), every level proven either
        way; the rounding's groupings were within 4e-4 of the bound, the
        pass's within 2e-3.
        """
        st, solver = self.st, self.master
        solver.purge(self.cut_row0, PURGE_AGE)
        solver.set_row_bounds(self.level_row, *level_bounds(level, st.n_sites))
        solver.relax(True)
        rounding = best is None
        if best is None and level is not None:
            best = self._cover_start(level, _at_least(ROUND_TIME, _remaining(limit, began)))
        if best is not None:
            stats["cuts"] += self.seed(best)
        bound, values = self.tangent_bound(level), None
        self.last_lp = None
        centre = None
        if rounding and self.fresh and best is not None:
            centre = _start_vector(st, self.lists, self.assigner, best)
        self.fresh = False
        for _ in range(LP_ROUNDS):
            out = solver.solve(_remaining(limit, began))
            if out.status == "infeasible":
                raise InfeasibleError(self.no_grouping(level))
            if out.values is None:
                break
            if out.status == "optimal":
                bound = max(bound, out.objective)  # a relaxation with fewer cuts: still a bound
                self.tell("LP rounds", best, bound)
                self._add_tangent(level, out.objective)
                self.last_lp = (out.objective, out.values, solver.reduced_costs())
            values = out.values
            stats["dropped"] += solver.drop_slack(self.cut_row0, DROP_FROM)
            rows, count = self._in_out(values, centre)
            stats["iterations"] += 1
            stats["cuts"] += count
            if count == 0 or (out.status == "optimal" and self._settled(values, out.objective)):
                break
            self.master.add_rows(rows)
            if out.status == "time_limit":
                break
        if values is not None and rounding:
            best = self._rounded(values, level, best, _remaining(limit, began), stats)
        return best, bound

    def _settled(self, values: np.ndarray, objective: float) -> bool:
        """Whether more cuts could raise this LP's bound by ``LP_SETTLED`` of the gap at most.

        :func:`optimizer.formulation.shortfall` bounds how far the master LP
        with every cut lies above this one. The rounds' last steps each
        raise the bound by next to nothing: at level 150 of a 5,000-body
        synthetic instance from scratch (gap 1e-3, 412 sites that may
        open), 32 of 49 rounds followed the first whose shortfall was within
        1e-5 of the bound. Stopping there, the LP phase took 69 s instead of
        96 s, to a bound 4e-7 lower.

        Only where the gap allows ``SETTLED_GAP`` of the LP's value or more
        (the LP's value holds the spend). At uk-councils' 1e-4 of it, RENS
        then started from other LP points: from scratch, levels 44 and 48
        took 30.2 s each (``LP_SETTLED`` 0.01) instead of 18.6 and 28.8 s,
        and level 45 35.1 s (0.001) instead of 23.3 s.
        """
        allowed = self.proof.allowance(objective)
        if allowed < SETTLED_GAP * abs(objective):
            return False
        return shortfall(self.st, self.lists, values) <= LP_SETTLED * allowed

    def _in_out(self, values: np.ndarray, centre: np.ndarray | None) -> tuple[Rows, int]:
        """The cuts of an LP round, separated in-out (Ben-Ameur & Neto 2007); and how many.

        Cuts are made at the point ``STABILITY`` of the way from the LP point
        ``values`` to ``centre`` (a grouping's columns, moved halfway to each
        LP point in turn) and kept where ``values`` violates them. The master
        then swings less between rounds than when cut at its own points
        only; where no such cut is violated, the cuts are made at ``values``
        itself, so the rounds still end only at a point no cut separates. On
        uk-councils from scratch, the LP rounds at levels 45, 52 and 150 took
        19.5 s, 17.2 s and 8.0 s instead of 26.2 s, 26.7 s and 13.6 s, to the
        same bound.

        Only the first level a solver runs, given no start, separates so (its
        centre is the covering MIP's grouping). With the cuts of the levels
        before, a curve's LP rounds are few and short, and in-out made them
        slower. With it at every level, ``--levels all`` took 736 s, against
        633 s with it only at the levels the downward pass does not reach
        (below 51: no start, but the cuts of the levels before); and even
        there, the default curve's level 46 stopped at 1.04e-4 after 30 s in
        two runs, where without it the level is proven in 16 s.
        """
        if centre is not None:
            rows, count = separate(
                self.st, self.lists, STABILITY * centre + (1.0 - STABILITY) * values, at=values
            )
            centre += 0.5 * (values - centre)
            if count:
                return rows, count
        return separate(self.st, self.lists, values)

    def _rounded(
        self,
        values: np.ndarray,
        level: int | None,
        best: Assignment | None,
        time_limit: float | None,
        stats: dict[str, Any],
    ) -> Assignment | None:
        """The better of ``best`` and the rounding of an LP point, seeded with its cuts."""
        rounded = self.round_lp(values, level, max(ROUND_TIME, time_limit or 0))
        if rounded is None or (best is not None and rounded.cost >= best.cost):
            return best
        stats["cuts"] += self.seed(rounded)
        return rounded

    def round_lp(
        self, values: np.ndarray, level: int | None, time_limit: float | None = None
    ) -> Assignment | None:
        """A grouping near a master LP point.

        Opens the sites the LP likes most among sets that reach every client
        (a covering MIP weighted by ``y``; the ``level`` largest ``y`` when
        the level is free), then prices the first assignment round at the
        volumes the LP routes to each open site (:func:`lp_sites`).
        """
        st = self.st
        y, w, _ = _split(st, values)
        plain = None
        if level is not None:
            ones = y >= 1.0 - TOLERANCE
            if int(ones.sum()) == level and np.all(ones | (y <= TOLERANCE)) and self._covers(ones):
                plain = self.assigner.assign(ones)  # what the covering MIP would open
            else:
                plain = self.cover(level, time_limit, -np.clip(y, 0.0, 1.0))
        if plain is None:
            plain = self.assigner.assign(_round(st, y, level))
        return self._guided(plain, w)

    def _guided(self, plain: Assignment | None, w: np.ndarray) -> Assignment | None:
        """``plain``, or its sites' assignment started where the LP's ``w`` sends each client."""
        if plain is None:
            return None
        mask = plain.mask(self.st.n_sites)
        guided = self.assigner.assign(mask, lp_sites(self.st, w, mask, plain.site))
        return better(plain, guided)

    def everyone_at_home(self, level: int | None) -> Assignment | None:
        """The only grouping when every site must open and every client's body hosts one.

        Then the host rule sends every (body, category) to its own site: the
        status quo, optimal because it is the only feasible grouping. Not used
        with capacities (which that grouping may break).
        """
        st = self.st
        openable = ~never_open(st)
        if level is None or level != int(openable.sum()) or (st.client_host < 0).any():
            return None
        if np.isfinite(st.site_capacity).any():
            return None
        if (np.diff(st.host_ptr) == 0).any():
            return None
        site = st.client_host.copy()
        return Assignment(site, self.assigner.cost(site, openable), np.flatnonzero(openable))

    def tangent_bound(self, level: int | None) -> float:
        """A lower bound at ``level`` from the LPs solved at other levels.

        The master LP's value (with any set of cuts) is convex in the level,
        so each solved LP with value ``v`` at level ``k`` and dual ``l`` of the
        level row gives ``v + l (level - k)``, a valid bound at every level.
        """
        if level is None:
            return -math.inf
        return max((v + slope * (level - k) for k, v, slope in self.tangents), default=-math.inf)

    def _add_tangent(self, level: int | None, value: float) -> None:
        slope = self.master.row_dual(self.level_row)
        if level is not None and slope is not None and math.isfinite(slope):
            self.tangents.append((level, value, slope))

    def cover(
        self, level: int, time_limit: float | None = None, weight: np.ndarray | None = None
    ) -> Assignment | None:
        """A feasible grouping at ``level`` from a covering MIP, or None.

        Every client needs an open site it may buy from (its host's included);
        among such sets of ``level`` sites, open the ones of least ``weight``
        (default: hosting most spend), ties to the ones hosting most spend.
        Near the smallest feasible level, greedy moves get stuck and this finds
        a start.
        """
        st = self.st
        hosted = np.zeros(st.n_sites)
        has = st.client_host >= 0
        np.add.at(hosted, st.client_host[has], st.client_spend[has])
        cost = -hosted / max(hosted.max(), 1.0)
        if weight is not None:
            cost = weight + 1e-3 * cost
        model = self._cover_model(cost, level)
        out = backend(model, SolverOptions(gap=1e-2, threads=self.options.threads)).solve(
            time_limit
        )
        if out.values is None:
            return None
        return self.assigner.assign(out.values > 0.5)

    def _feasible(self, level: int, alone: bool, time_limit: float | None) -> bool:
        """Whether ``level`` agencies can reach every body in every category.

        For a level solved ``alone`` (a solver's first, given no start), the
        covering MIP's grouping at ``level`` proves it, if it finds one, and
        is kept to start the level's LP rounds (:meth:`_cover_start`). On
        uk-councils at level 48 from scratch, the check took 0.25 s instead
        of 0.67 s: the covering MIP solved in 0.06 s, the set cover in
        0.48 s, and building their rows took the rest. Otherwise the set
        cover of :meth:`smallest_level` answers, once for every level: with
        a covering MIP at every level instead, levels 300 to 271 of a serial
        curve took 44.9 s instead of 42.4 s (their times summed). A start
        with ``level`` sites open proves the level feasible itself, and
        :meth:`solve` does not ask: at level 200 of a 2,000-body synthetic
        instance the set cover had taken 15.4 s of the level's 30.
        """
        if alone and self.fewest is None:
            found = self.cover(level, time_limit)
            if found is not None:
                self.covered = (level, found)
                return True
        return level >= self.smallest_level(time_limit)

    def _cover_start(self, level: int, time_limit: float | None) -> Assignment | None:
        """The covering MIP's grouping at ``level`` (:meth:`cover`); the one kept, if any."""
        held, self.covered = self.covered, None
        if held is not None and held[0] == level:
            return held[1]
        return self.cover(level, time_limit)

    def no_grouping(self, level: int | None) -> str:
        """Why no grouping at ``level`` meets the rules, naming the rules the set cover ignores.

        The set cover (:meth:`smallest_level`) counts agencies under the
        radius and nation rules only, and the covering MIP of a level solved
        alone checks them only. Where the level has at least the agencies
        either found (the set cover runs here, within the solver's time
        limit, when neither has), the capacities or the whole-body rule rule
        it out; below that count, the radii may too.
        """
        beyond = self._beyond_cover()
        if not beyond:
            return _no_grouping(level)
        rules = " and ".join(beyond) + (" rules" if beyond == [WHOLE_BODY] else " rule")
        at = "with the number of agencies free" if level is None else f"at level {level}"
        if self.covered is None and self.fewest is None:
            try:
                self.smallest_level(self.options.time_limit)
            except InfeasibleError as err:  # the radii alone rule out every level
                return str(err)
        reach = self.fewest if self.covered is None else self.covered[0]
        if reach is not None and (level is None or level >= reach):
            return (
                f"no grouping {at} meets every rule: {reach} agencies can reach every body"
                f" within its categories' radii, so {rules} it out"
            )
        return (
            f"no grouping {at} meets every rule: too few agencies to reach every body within its"
            f" categories' radii, or {rules} it out (the fewest agencies within the radii"
            " is counted without them, so it is a lower estimate)"
        )

    def _beyond_cover(self) -> list[str]:
        """The rules in play that the set cover ignores, described."""
        rules = []
        capacity = self.st.site_capacity
        openable = ~self.closed & (self.instance.sites["status"] != "closed").to_numpy()
        limited = openable & np.isfinite(capacity)
        if limited.any():
            spend = float(self.instance.spend["spend"].sum())
            count, free = int(limited.sum()), int((openable & ~limited).sum())
            rules.append(
                f"the sites' capacities (GBP {capacity[limited].sum():,.0f} in all at the {count}"
                f" capacity-limited site{'' if count == 1 else 's'} that may open"
                f"{f' besides {free} unlimited' if free else ''}, against GBP {spend:,.0f} of"
                " spend; an open site's host buys all its own spend there)"
            )
        if self.whole_body:
            rules.append(WHOLE_BODY)
        return rules

    def smallest_level(self, time_limit: float | None = None) -> int:
        """The fewest agencies that can reach every body in every category, proven.

        A set-cover MIP (every client needs an open site it may buy from);
        feasibility only grows with more agencies, so every level below this
        one is infeasible. Computed once per solver, in ``COVER_TIME_LIMIT``
        or ``time_limit`` seconds, whichever is less: stopped early, its
        bound still proves the levels below it infeasible.
        """
        if self.fewest is None:
            st = self.st
            model = self._cover_model(np.ones(st.n_sites))
            allowed = COVER_TIME_LIMIT if time_limit is None else min(COVER_TIME_LIMIT, time_limit)
            out = backend(model, SolverOptions(gap=0.0, threads=self.options.threads)).solve(
                allowed
            )
            if out.status == "infeasible":
                raise InfeasibleError(_no_grouping(None))
            bound = out.bound if math.isfinite(out.bound) else 1.0
            self.fewest = max(1, math.ceil(bound - 1e-6))
        return self.fewest

    def _coverage(self) -> sp.csr_matrix:
        """One row per distinct set of sites some client may buy from, none implied (built once).

        A client whose sites include all of another client's of the same
        body adds nothing: covering the smaller set covers it. Without these
        rows the covering MIPs are far smaller where radii differ by
        category: on a 2,000-body synthetic instance, 1,861 rows and 0.39m
        nonzeros instead of 5,752 and 2.2m, and the fewest agencies proven
        in 3 s instead of 20 s.
        """
        if self.coverage is None:
            st = self.st
            rows = Rows()
            seen: set[bytes] = set()
            for sites in _least_sets(st):
                key = sites.tobytes()
                if key not in seen:
                    seen.add(key)
                    rows.add(sites, np.ones(len(sites)), 1.0, np.inf)
            self.coverage = rows.csr(st.n_sites)
        return self.coverage

    def _covers(self, mask: np.ndarray) -> bool:
        """Whether the sites in ``mask`` reach every client."""
        return bool((self._coverage() @ mask.astype(float) >= 1.0).all())

    def _cover_model(self, cost: np.ndarray, level: int | None = None) -> MatrixModel:
        """The covering MIP: every row of :meth:`_coverage` met, ``level`` sites if given."""
        st = self.st
        matrix = self._coverage()
        lo, hi = np.ones(matrix.shape[0]), np.full(matrix.shape[0], np.inf)
        if level is not None:
            matrix = sp.vstack([matrix, np.ones((1, st.n_sites))], format="csr")
            lo, hi = np.r_[lo, level], np.r_[hi, level]
        return MatrixModel(
            cost,
            st.must_open.astype(float),
            np.where(never_open(st), 0.0, 1.0),
            np.ones(st.n_sites, dtype=bool),
            matrix,
            lo,
            hi,
        )

    def seed(self, grouping: Assignment) -> int:
        """Add the cuts that are tight at a known grouping; return how many.

        The LP relaxation leaves most cost variables loose; cuts taken at good
        integer points give the master a faithful picture where it matters.
        """
        st = self.st
        self._master()
        values = _start_vector(st, self.lists, self.assigner, grouping)
        values[st.n_sites + st.n_copies : self.lists.pool0] = -np.inf
        rows, count = separate(st, self.lists, values)
        self.master.add_rows(rows)
        return count

    def _exact(
        self,
        level: int | None,
        best: Assignment | None,
        bound: float,
        limit: float | None,
        began: float,
        stats: dict[str, Any],
    ) -> tuple[Assignment | None, float, str, dict[str, Any]]:
        """Branch and Benders cut (:mod:`optimizer.branching`) until the gap or the limit.

        Node LPs drop their slack cuts once the master holds more than
        ``NODE_DROP_FROM`` rows, fewer than the LP rounds allow: OR-Library
        pmed36, 38 and 39 then took 46.9, 13.2 and 12.1 s instead of 57.8,
        18.2 and 18.6 s with 5,000 (one run each; 3,000 did the same as
        4,000; from 0, dropping at every LP, pmed36 stopped at its 200 s
        limit after 200 nodes).
        """
        if best is not None and self.proof.holds(best.cost, bound):
            return best, bound, "optimal", stats
        st = self.st
        self.tell("branch and cut", best, bound)
        fixed = self.fix_by_reduced_costs(best.cost) if best is not None else None
        self.master.relax(True)
        search = BranchAndCut(
            self.master,
            np.arange(st.n_sites + st.n_copies),
            lambda values: separate(st, self.lists, values),
            lambda values, exact: self._grouping(values, exact, level),
            self.proof,
            self.cut_row0,
            NODE_DROP_FROM,
            lambda grouping, low: self.tell("branch and cut", grouping, low),
        )
        try:
            found = search.run(best, bound, math.inf if limit is None else began + limit)
        finally:
            if fixed is not None:
                self.master.set_col_bounds(*fixed)
        stats["nodes"] = found.nodes
        stats["iterations"] += found.lps
        stats["cuts"] += found.cuts
        best, bound = found.best, found.bound
        ok = best is not None and self.proof.holds(best.cost, bound)
        return best, bound, "optimal" if ok else "time_limit", stats

    def _grouping(self, values: np.ndarray, exact: bool, level: int | None) -> Assignment | None:
        """A master LP point's grouping if ``exact`` (integral, priced), else its rounding.

        The rounding opens the sites the LP likes most and starts each client
        where the LP's ``w`` sends it (:meth:`_guided`). Branch and cut rounds
        every node this way: uk-councils levels 239 and 235 of a ``--levels
        all`` run stopped at 1.01e-4 and 1.06e-4 when each client started at
        its cheapest site; those roundings stayed 0.3% above the bound. From
        the same incumbents and cuts, the guided roundings met the gap and
        proved the levels in 19.8 s and 7.6 s of branch and cut, not 25 s.
        """
        y, w, _ = _split(self.st, values)
        if exact:
            return _from_master(self.st, self.assigner, y, w)
        return self._guided(self.assigner.assign(_round(self.st, y, level)), w)

    def fix_by_reduced_costs(
        self, upper: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Fix the ``y`` and ``w`` that the last LP proves cannot move in a better grouping.

        With LP value ``v`` and reduced cost ``d_j``, any grouping with column
        ``j`` away from the bound it sits at costs at least ``v + |d_j|``; when
        that exceeds ``upper`` (the incumbent's cost), ``j`` stays at its
        bound. Valid for this level only: returns the columns and their old
        bounds, to put back after it.
        """
        if self.last_lp is None:
            return None
        value, point, reduced = self.last_lp
        if reduced is None:
            return None
        n = self.st.n_sites + self.st.n_copies
        lo, hi = self.master.col_bounds(np.arange(n))
        x, d = point[:n], reduced[:n]
        slack = upper - value + TOLERANCE * abs(upper)
        at_lo = (np.abs(x - lo) <= TOLERANCE) & (d > slack)
        at_hi = (np.abs(x - hi) <= TOLERANCE) & (-d > slack) & ~at_lo
        cols = np.flatnonzero((at_lo | at_hi) & (lo < hi))
        new = np.where(at_lo[cols], lo[cols], hi[cols])
        self.master.set_col_bounds(cols, new, new)
        return cols, lo[cols], hi[cols]

    def _mip_rounds(
        self,
        best: Assignment | None,
        bound: float,
        limit: float | None,
        began: float,
        stats: dict[str, Any],
        share: float = 1.0,
    ) -> tuple[Assignment | None, float, str, dict[str, Any]]:
        """Master MIPs, cutting at their points, until one is priced exactly or the gap is met.

        Each MIP stops at ``share`` of the gaps to its own bound or once
        it holds a grouping within the options' gap of ``bound``, the level's
        bound: a neighbourhood's MIP can prove its own best within the gap and
        stop short of that (uk-councils level 306: RENS stopped at 1.3e-4 of
        the level's bound, where a grouping within 1e-4 lay in its
        neighbourhood).

        The rounds also stop once a grouping is within ``BRANCH_GAP`` gaps
        of ``bound`` (see :meth:`_rens_pays`), and each MIP soon after
        HiGHS finds a point that gives one: each improving point is priced
        as it comes, and improved by swaps at once if it beats the best
        grouping so far (:meth:`_swapped`). At uk-councils level 48 from
        scratch, the second MIP found such a point 4.2 s in and then ran
        15 s more without a better one; the level took 34 s instead of 49 s.
        At level 47, swaps took the third MIP's first priced point from
        1.12e-4 above the bound to 9.07e-5 in 0.03 s, where that MIP had run
        4 s more to find a grouping within the gap; the level took 30.6 s
        instead of 34.4 s.
        """
        st, solver, assigner = self.st, self.master, self.assigner
        status = "time_limit"
        goal, near = self.proof.goal(bound), self.proof.goal(bound, BRANCH_GAP)

        deadline = math.inf if limit is None else began + limit
        swapped: list[Assignment] = []  # the MIP's points improved by swaps as they came

        def close(point: np.ndarray) -> bool:
            grouping = self._swapped(point, swapped[-1] if swapped else best, deadline, goal, near)
            if grouping is not None:
                swapped.append(grouping)
            return grouping is not None and grouping.cost <= near

        for _ in range(MIP_ROUNDS):
            if limit is not None and clock() - began >= limit:
                break
            start = _start_vector(st, self.lists, assigner, best) if best is not None else None
            out = solver.solve(_remaining(limit, began), start, goal, share, close)
            stats["iterations"] += 1
            if out.status == "infeasible":
                if best is None:
                    raise InfeasibleError(_no_grouping(None))
                break
            bound = max(bound, out.bound)
            count = 1
            if out.values is not None:
                best, count = self._take((*out.others, out.values), best, stats)
            if swapped and (best is None or swapped[-1].cost < best.cost):
                best = swapped[-1]
                stats["cuts"] += self.seed(best)
            swapped.clear()
            if best is not None and self.proof.holds(best.cost, bound):
                status = "optimal"
                break
            if best is not None and best.cost <= near:
                break
            if out.status not in ("optimal", "target") or count == 0:
                break
        return best, bound, status, stats

    def _swapped(
        self,
        point: np.ndarray,
        best: Assignment | None,
        deadline: float,
        target: float,
        near: float,
    ) -> Assignment | None:
        """A master MIP point's grouping improved by swaps, if it beats ``best``; else None.

        Swaps stop at the first local optimum, unless that is within ``near``
        (branch and cut's to close): every other swap is then tried as well
        (:meth:`polish`), since the better the grouping branch and cut
        starts from, the fewer nodes it needs. Trying every other swap at
        each point was slow: it ran until RENS's deadline whenever no swap
        helped, and a ``--levels all`` run of uk-councils took 689 s instead
        of 316 s (levels 258 to 250 in series: 105 s instead of 22 s).
        """
        y, w, _ = _split(self.st, point)
        grouping = _from_master(self.st, self.assigner, y, w)
        if grouping is None or (best is not None and grouping.cost >= best.cost):
            return None
        grouping = self.polish(grouping, deadline, target, wide=False)
        return self.polish(grouping, deadline, target) if grouping.cost <= near else grouping

    def _take(
        self, points: tuple[np.ndarray, ...], best: Assignment | None, stats: dict[str, Any]
    ) -> tuple[Assignment | None, int]:
        """Price the integer points of a master MIP and cut at each; return the best grouping.

        ``points`` ends with the MIP's own solution; the count returned is
        that of the cuts violated there (none: the master valued it
        exactly). Cutting at the points HiGHS found on its way as well,
        where the master's theta was also too low, spares the next MIP
        finding them again.
        """
        st, count = self.st, 0
        for point in points:
            y, w, _ = _split(st, point)
            best = better(best, _from_master(st, self.assigner, y, w))
            rows, count = separate(st, self.lists, point)
            stats["cuts"] += count
            self.master.add_rows(rows)
        return best, count

    def _compact(
        self, level: int | None, limit: float | None, began: float
    ) -> tuple[Assignment | None, float, str, dict[str, Any]]:
        st = self.st
        built = clock()
        model, pairs = build_compact(st, level, self.whole_body)
        solver = backend(model, self.options, floor=self.proof.floor)
        stats: dict[str, Any] = {
            "formulation": "compact",
            "iterations": 1,
            "cuts": 0,
            "build": clock() - built,
        }
        self.tell("compact MIP", None, -math.inf)
        out = solver.solve(_remaining(limit, began))
        if out.status == "infeasible":
            raise InfeasibleError(self.no_grouping(level))
        if out.values is None:
            return None, out.bound, "time_limit", stats
        x = out.values[st.n_sites + st.n_copies : st.n_sites + st.n_copies + len(pairs)]
        chosen = pairs[x > 0.5]
        site = np.full(st.n_clients, -1)
        site[chosen[:, 0]] = st.copy_site[chosen[:, 1]]
        open_mask = out.values[: st.n_sites] > 0.5
        best = Assignment(site, self.assigner.cost(site, open_mask), np.flatnonzero(open_mask))
        status = "optimal" if self.proof.holds(best.cost, out.bound) else "time_limit"
        return best, out.bound, status, stats


def write_model(
    instance: Instance,
    level: int | None,
    path: Path,
    *,
    keep_open: Iterable[str] = (),
    keep_closed: Iterable[str] = (),
) -> None:
    """Write the compact model of a level as an LP file (through pulp), without solving."""
    opened = site_mask(instance, keep_open, "--keep-open")
    closed = site_mask(instance, keep_closed, "--keep-closed")
    precheck(instance, level, opened, closed)
    st = structure(instance, opened, closed)
    model, pairs = build_compact(st, level, not instance.model.scenario.split_categories)
    model.names = column_names(instance, st, pairs, len(model.cost))
    problem, _ = to_pulp(model, [])
    path.parent.mkdir(parents=True, exist_ok=True)
    problem.writeLP(str(path))


def column_names(instance: Instance, st: Structure, pairs: np.ndarray, n: int) -> list[str]:
    """Structured column names: ``y[site]``, ``w[site,cat,bN]``, ``x[body,cat,site,bN]``, ``uN``."""
    sites = [_safe(s) for s in instance.sites.index]
    bodies = [_safe(b) for b in instance.bodies.index]
    cats = [_safe(c) for c in instance.categories]
    names = [f"y[{s}]" for s in sites]
    names += [
        f"w[{sites[j]},{cats[c]},b{t}]"
        for j, c, t in zip(st.copy_site, st.copy_cat, st.copy_band, strict=True)
    ]
    for i, a in pairs.tolist():
        names.append(
            f"x[{bodies[st.client_body[i]]},{cats[st.client_cat[i]]},"
            f"{sites[st.copy_site[a]]},b{st.copy_band[a]}]"
        )
    names += [f"u{k}" for k in range(n - len(names))]
    return names


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(text))


def check_level_number(level: int | None, option: str = "level") -> None:
    """Raise :class:`DataValidationError` for a level below 1 (no grouping has no agency).

    A level above the sites that may open is no bad input but an
    infeasible level (:func:`precheck`).
    """
    if level is not None and level < 1:
        raise DataValidationError(
            [f"({option}) | a level is a number of agencies, at least 1: got {level}"]
        )


def precheck(instance: Instance, level: int | None, opened: np.ndarray, closed: np.ndarray) -> None:
    """Raise :class:`InfeasibleError` for causes visible before any solve."""
    available = int(
        (~closed).sum() - (instance.sites["status"] == "closed").to_numpy()[~closed].sum()
    )
    nations = instance.bodies.loc[instance.spend["body_id"].unique(), "nation"].nunique()
    if level is not None and level > available:
        raise InfeasibleError(f"level {level} is larger than the {available} sites that may open")
    if level is not None and instance.model.scenario.same_nation and level < nations:
        raise InfeasibleError(
            f"level {level} is smaller than the {nations} nations with spend; each needs an agency"
            " of its own while same_nation holds"
        )
    forced = int((opened | (instance.sites["status"] == "open").to_numpy()).sum())
    if level is not None and level < forced:
        raise InfeasibleError(f"level {level} is smaller than the {forced} sites forced open")
    _check_host_capacity(instance, level, available, opened, closed)
    if np.isfinite(instance.sites["capacity"].to_numpy(dtype=float)).all():
        capacity = float(instance.sites["capacity"].to_numpy(dtype=float)[~closed].sum())
        total = float(instance.spend["spend"].sum())
        if capacity < total:
            raise InfeasibleError(
                f"total capacity {capacity:,.0f} is below total spend {total:,.0f}"
            )


def _check_host_capacity(
    instance: Instance, level: int | None, available: int, opened: np.ndarray, closed: np.ndarray
) -> None:
    """Raise when sites whose capacity is below their host's spend are needed open.

    An open site's host buys all its spend through it (the host rule), so
    such a site can never open.
    """
    sites = instance.sites
    spend = instance.spend.groupby("body_id")["spend"].sum()
    needs = sites["body_id"].map(spend).fillna(0.0).to_numpy(dtype=float)
    blocked = (sites["capacity"].to_numpy(dtype=float) < needs) & ~closed
    blocked &= (sites["status"] != "closed").to_numpy()
    if not blocked.any():
        return
    names = ", ".join(sites.index[blocked][:12])
    why = "their capacity is below their host body's spend, which the host rule puts through them"
    forced = blocked & (opened | (sites["status"] == "open").to_numpy())
    if forced.any():
        raise InfeasibleError(
            f"sites {', '.join(sites.index[forced][:12])} are forced open but {why}"
        )
    if level is not None and level > available - int(blocked.sum()):
        raise InfeasibleError(
            f"level {level} is larger than the {available - int(blocked.sum())} sites that may"
            f" open: sites {names} cannot open, as {why}"
        )


def _check_must_open(instance: Instance, st: Structure, level: int | None) -> None:
    must = st.must_open
    clash = must & never_open(st)
    names = instance.sites.index.to_numpy()
    if clash.any():
        raise InfeasibleError(
            f"sites {', '.join(names[clash][:12])} must open (their host body can buy a category"
            " nowhere else) but are closed or cannot serve their host"
        )
    if level is not None and level < must.sum():
        raise InfeasibleError(
            f"level {level} is smaller than the {int(must.sum())} sites that must stay open: forced"
            f" open, or hosting a body that can buy a category nowhere else within its radius"
            f" ({', '.join(names[must][:12])}{' ...' if must.sum() > 12 else ''})"
        )


def _least_sets(st: Structure) -> list[np.ndarray]:
    """Each body's smallest site sets: its clients' sets that hold no other of its clients' sets."""
    reach = [
        np.unique(
            np.r_[
                st.copy_site[st.lst_copy[st.ptr[i] : st.ptr[i + 1]]],
                st.copy_site[st.host_copy[st.host_ptr[i] : st.host_ptr[i + 1]]],
            ]
        )
        for i in range(st.n_clients)
    ]
    kept: list[np.ndarray] = []
    order = np.lexsort((np.array([len(r) for r in reach], dtype=int), st.client_body))
    for body in np.split(order, np.flatnonzero(np.diff(st.client_body[order])) + 1):
        least: list[np.ndarray] = []
        for sites in (reach[i] for i in body):
            if not any(np.isin(small, sites, assume_unique=True).all() for small in least):
                least.append(sites)
        kept.extend(least)
    return kept


def _deadline(limit: float | None, began: float) -> float:
    """When RENS or swaps stop: after as long as the level took so far.

    At least ``NEIGHBOURHOOD_TIME``: once the LP rounds took 1 s, RENS had
    1 s, stopped its small MIP early, and the master MIP then spent the rest
    of the level without proving it (a serial chain 131, 129, ..., 115 of
    uk-councils: levels 119 and 117 stopped at 30 s, 1.3e-4; with 5 s,
    3.3 s and 4.4 s, proven). Capped at ``POLISH_SHARE`` of the time left,
    which keeps time for branch and cut.
    """
    spent = clock() - began
    budget = max(NEIGHBOURHOOD_TIME, spent)
    if limit is not None:
        budget = min(budget, max(0.0, limit - spent) * POLISH_SHARE)
    return clock() + budget


def _swap_deadline(limit: float | None, began: float) -> float:
    """When swaps around RENS stop: :func:`_deadline`, but ``NEIGHBOURHOOD_TIME`` at most."""
    return min(_deadline(limit, began), clock() + NEIGHBOURHOOD_TIME)


def _out(limit: float | None, began: float) -> bool:
    """Whether a level that began at ``began`` has used its ``limit`` (None: never)."""
    return limit is not None and clock() - began >= limit


def _remaining(limit: float | None, began: float) -> float | None:
    if limit is None:
        return None
    return max(0.01, limit - (clock() - began))


def _at_least(floor: float, seconds: float | None) -> float | None:
    """``seconds``, but ``floor`` at least; None (no limit) stays None.

    A level given no start gets its first grouping from a covering MIP
    given ``ROUND_TIME`` at least, even past the level's limit: without it,
    a level the downward pass does not reach (near the fewest feasible
    agencies, where greedy drops get stuck) had no grouping to return at
    short limits.
    """
    return None if seconds is None else max(floor, seconds)


def _split(st: Structure, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = st.n_sites
    b = a + st.n_copies
    return values[:a], values[a:b], values[b : b + st.n_clients]


def purchase_floor(instance: Instance) -> float:
    """The least purchase cost any grouping can reach, GBP/yr: ``sum_c V_c - saving_c(V_c)``.

    ``V_c`` is category ``c``'s whole spend over all bodies. Marginal rates
    never fall, so ``saving`` is convex with ``saving(0) = 0``, hence
    superadditive: agencies splitting a category's volume save at most what
    one agency buying all of it would. Every other cost term is at least 0,
    so a grouping's total less this floor (its decision cost) is too.
    """
    volume = instance.spend_matrix.sum(axis=0)
    cats = instance.model.categories.values()
    return float(sum(v - c.saving(float(v)) for v, c in zip(volume, cats, strict=True)))


def proof_of(instance: Instance, options: SolverOptions) -> Proof:
    """The proof test of ``options``'s gaps on ``instance`` (:class:`optimizer.solve.Proof`)."""
    return Proof(options.gap, options.gap_abs, purchase_floor(instance))


def check_bound(total: float, bound: float, level: int | None = None) -> None:
    """Raise :class:`SolverError` when ``bound`` lies above ``total`` beyond rounding.

    A lower bound above a feasible grouping's cost is a bug in whatever
    proved it; it is reported, never clamped to a gap of 0.
    """
    if bound - total > BOUND_TOLERANCE * max(1.0, abs(total)):
        at = "" if level is None else f" at level {level}"
        raise SolverError(
            f"internal error{at}: the proven lower bound {bound:,.2f} is above the total"
            f" {total:,.2f} of a feasible grouping"
        )


def _spread(cost: float, bound: float) -> float:
    """``(cost - bound) / |cost|``: how far a grouping lies from the bound, of its whole total.

    Not a proof (the total holds the spend); the heuristics' thresholds
    (``RESCUE_GAP``) are in these terms.
    """
    return (cost - bound) / max(abs(cost), 1e-9)


def _round(st: Structure, y: np.ndarray, level: int | None) -> np.ndarray:
    """Open the forced sites, then the sites the LP likes most."""
    score = np.where(st.fixed_closed, -1.0, y + 2.0 * st.fixed_open)
    if level is None:
        return (score >= 0.5) & ~st.fixed_closed
    mask = np.zeros(st.n_sites, dtype=bool)
    mask[np.argsort(-score, kind="stable")[:level]] = True
    return mask


def lp_sites(st: Structure, w: np.ndarray, mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Each client's open site that a master LP point sends most of it to.

    The client fills its copies cheapest first up to the LP's ``w`` (as in
    :func:`optimizer.formulation.separate`); among the open sites it reaches,
    the one it fills most (ties to the cheapest). Clients whose host is open
    stay there; clients that reach no open site take ``fallback``.
    """
    seg = np.repeat(np.arange(st.n_clients), np.diff(st.ptr))
    worth = np.clip(w[st.lst_copy], 0.0, 1.0)
    cum = np.cumsum(worth)
    before = cum - worth - np.r_[0.0, cum][st.ptr[:-1]][seg]
    x = np.clip(1.0 - before, 0.0, worth)
    sites = st.copy_site[st.lst_copy]
    score = np.where(mask[sites] & (x > TOLERANCE), x, -1.0)
    top, has = np.full(st.n_clients, -1.0), np.diff(st.ptr) > 0
    top[has] = np.maximum.reduceat(score, st.ptr[:-1][has]) if len(score) else 0.0
    heads = np.flatnonzero((score == top[seg]) & (score > 0))[::-1]
    site = fallback.copy()
    site[seg[heads]] = sites[heads]  # the last write of a client is its first entry: the cheapest
    host = st.client_host
    at_home = (host >= 0) & mask[np.maximum(host, 0)]
    site[at_home] = host[at_home]
    return site


def _from_master(
    st: Structure, assigner: Assigner, y: np.ndarray, w: np.ndarray
) -> Assignment | None:
    """The master's grouping (cheapest open copy, host rule), re-priced; then improved."""
    open_mask = y > 0.5
    site = np.full(st.n_clients, -1)
    is_open = w[st.lst_copy] > 0.5
    seg = np.repeat(np.arange(st.n_clients), np.diff(st.ptr))
    hit = np.flatnonzero(is_open)
    clients, first = np.unique(seg[hit], return_index=True)
    site[clients] = st.copy_site[st.lst_copy[hit[first]]]
    hosted = st.client_host >= 0
    at_host = hosted & open_mask[np.maximum(st.client_host, 0)]
    site[at_host] = st.client_host[at_host]
    if (site < 0).any():
        return assigner.assign(open_mask)
    own = Assignment(site, assigner.cost(site, open_mask), np.flatnonzero(open_mask))
    return better(own, assigner.assign(open_mask))


def _start_vector(
    st: Structure, lists: CutLists, assigner: Assigner, best: Assignment
) -> np.ndarray:
    """The master's column values for a grouping: y, the band copy of each volume, theta, pools."""
    y = np.zeros(st.n_sites)
    y[best.open_sites] = 1.0
    copy, client_cost = assigner.copies_of(best.site)
    w = np.zeros(st.n_copies)
    w[copy] = 1.0
    return np.r_[y, w, client_cost - st.floor, lists.pool_values(w)]


def _no_grouping(level: int | None) -> str:
    at = "with the number of agencies free" if level is None else f"at level {level}"
    return (
        f"no grouping {at} meets every rule (radius, nation, host, capacity): too few agencies"
        " to reach every body within its categories' radii"
    )


def _result(
    instance: Instance,
    st: Structure,
    best: Assignment | None,
    bound: float,
    status: str,
    stats: dict[str, Any],
    proof: Proof,
    began: float,
) -> SolveResult:
    if best is None:
        raise NoGroupingError(
            f"no grouping found within the time limit (bound {bound:,.2f})", bound
        )
    sites = instance.sites.index.to_numpy()
    table = pd.DataFrame(
        {
            "body_id": instance.bodies.index.to_numpy()[st.client_body],
            "category": np.array(instance.categories)[st.client_cat],
            "site_id": sites[best.site],
        }
    )
    check = evaluate(instance, table, open_sites=sites[best.open_sites].tolist())
    if not check.feasible or abs(check.total - best.cost) > CHECK_TOLERANCE * max(
        1.0, abs(check.total)
    ):
        raise SolverError(
            f"the evaluator disagrees with the solver: evaluator {check.total:,.6f} vs solver"
            f" {best.cost:,.6f}; violations: {[str(v) for v in check.violations]}"
        )
    total = clock() - began
    seconds = {
        "build": stats.get("build", 0.0),
        "solve": total - stats.get("build", 0.0),
        "total": total,
    }
    check_bound(check.total, bound, check.level)
    bound = min(bound, check.total)
    return SolveResult(
        level=check.level,
        status=status,
        objective=check.total,
        bound=bound,
        gap=proof.relative(check.total, bound),
        seconds=seconds,
        solver=stats["solver"],
        formulation=stats["formulation"],
        groupings=table,
        evaluation=check,
        iterations=stats["iterations"],
        cuts=stats["cuts"],
        nodes=stats.get("nodes", 0),
    )
