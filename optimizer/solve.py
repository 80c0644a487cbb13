"""The only module that talks to a solver.

HiGHS is driven directly through highspy from arrays (the fast path, warm
starts, cuts added in place); CBC, and HiGHS too if asked, go through pulp,
which is also how ``--write-lp`` writes a model. Whatever the solver says,
the status reported here is read from its own status and bound: "optimal"
only when the proven gap is within the requested ``gap``.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pulp

from optimizer.errors import DataValidationError, SolverError
from optimizer.formulation import MatrixModel, Rows

SOLVERS = ("highs", "cbc")

Watch = Callable[[np.ndarray], bool]  # shown each improving MIP point; True stops the MIP


DEFAULT_TIME_LIMIT = 30.0  # s per level: the command line's default for curve and solve
DEFAULT_GAP = 1.9e-3  # of the decision cost (Proof); README "The gap" says why


@dataclass(frozen=True)
class SolverOptions:
    """How to solve: which solver, time limit (s), gaps, threads.

    A level counts as proven once its total less its bound is within
    ``gap`` of its decision cost or within ``gap_abs`` GBP (:class:`Proof`).
    """

    solver: str = "highs"
    time_limit: float | None = None
    gap: float = DEFAULT_GAP
    threads: int | None = None
    gap_abs: float = 0.0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise DataValidationError(
                [f"(--solver) | expected one of {list(SOLVERS)}, got {self.solver!r}"]
            )
        problems = option_problems(self.time_limit, self.gap, self.threads, self.gap_abs)
        if problems:
            raise DataValidationError(f"(--{key.replace('_', '-')}) | {m}" for key, m in problems)


def cpu_cores() -> int:
    """The number of CPU cores of this machine (the most ``threads`` a solve may ask for)."""
    return os.cpu_count() or 1


def option_problems(
    time_limit: float | None, gap: float, threads: int | None, gap_abs: float = 0.0
) -> list[tuple[str, str]]:
    """What is wrong with a time limit, gaps and thread count, as ``(option, message)`` pairs.

    The time limit (seconds) must be finite and above 0 (None: no limit),
    the gap at least 0 and below 1, the absolute gap (GBP) finite and at
    least 0, and threads (None: the solver's choice) a whole number from 1
    to :func:`cpu_cores`.

    Examples
    --------
    >>> option_problems(30.0, 1e-4, None)
    []
    >>> option_problems(0.0, float("nan"), 1)[0]
    ('time_limit', 'must be a number of seconds above 0, got 0.0')
    """
    problems = []
    if time_limit is not None and not (_real(time_limit) and 0 < time_limit < math.inf):
        problems.append(("time_limit", f"must be a number of seconds above 0, got {time_limit!r}"))
    if not (_real(gap) and 0 <= gap < 1):
        problems.append(("gap", f"must be at least 0 and below 1, got {gap!r}"))
    if not (_real(gap_abs) and 0 <= gap_abs < math.inf):
        problems.append(("gap_abs", f"must be a finite number of GBP at least 0, got {gap_abs!r}"))
    cores = cpu_cores()
    if threads is not None and not (_whole(threads) and 1 <= threads <= cores):
        problems.append(("threads", f"must be a whole number from 1 to {cores}, got {threads!r}"))
    return problems


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class Proof:
    """When a grouping's total counts as proven against a lower bound.

    The relative gap is ``(total - bound) / max(total - floor, 1)``: relative
    to the decision cost, the total less the ``floor`` (the purchase cost no
    grouping can go below; :func:`optimizer.engine.purchase_floor`), never to
    a total that holds the spend itself. A total is proven once that gap is
    within ``gap`` or ``total - bound`` within ``gap_abs`` GBP.

    Examples
    --------
    >>> proof = Proof(gap=0.01, gap_abs=0.0, floor=1000.0)
    >>> proof.relative(1100.0, 1099.0), proof.holds(1100.0, 1099.0), proof.holds(1100.0, 1098.0)
    (0.01, True, False)
    >>> round(proof.goal(1099.0), 6)
    1100.0
    """

    gap: float = DEFAULT_GAP
    gap_abs: float = 0.0
    floor: float = 0.0

    def relative(self, total: float, bound: float) -> float:
        """``(total - bound) / max(total - floor, 1)``; inf when the bound is not finite.

        Never clamped: a negative value is a bound above the total.
        """
        if not math.isfinite(bound):
            return math.inf
        return (total - bound) / max(total - self.floor, 1.0)

    def allowance(self, total: float, scale: float = 1.0) -> float:
        """How far (GBP) ``total`` may lie above its bound and count as proven (``scale`` gaps)."""
        return scale * max(self.gap * max(total - self.floor, 1.0), self.gap_abs)

    def holds(self, total: float, bound: float, scale: float = 1.0) -> bool:
        """Whether ``total`` is proven within ``scale`` times the gaps by ``bound``."""
        return math.isfinite(bound) and total - bound <= self.allowance(total, scale)

    def goal(self, bound: float, scale: float = 1.0) -> float:
        """The highest total that ``bound`` proves within ``scale`` times the gaps."""
        if not math.isfinite(bound):
            return -math.inf
        g = scale * self.gap
        relative = (bound - g * self.floor) / (1.0 - g) if g < 1.0 else math.inf
        return max(relative, bound + g, bound + scale * self.gap_abs)


@dataclass(frozen=True)
class Outcome:
    """One solver call: status, values, objective and proven bound.

    ``status`` is ``optimal``, ``infeasible``, ``time_limit`` (stopped early;
    ``values`` may hold the best point found), ``target`` (a MIP stopped at
    a point whose objective reached the ``target`` it was given) or
    ``error`` (numerical failure
    even after a retry: no point and no bound, so a cutting-plane loop stops
    and keeps what it has proven). ``others`` are the other integer points a
    MIP found on its way to ``values`` (HiGHS's improving solutions, the
    start among them), oldest first.
    """

    status: str
    values: np.ndarray | None
    objective: float
    bound: float
    others: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """An LP basis that outlives row changes: column statuses, and the nonbasic rows by id."""

    col_status: np.ndarray
    row_ids: np.ndarray
    row_status: np.ndarray


STATUSES = tuple(highspy.HighsBasisStatus(s) for s in range(5))
BASIC = int(highspy.HighsBasisStatus.kBasic)


class HighsBackend:
    """A model held in HiGHS; rows can be added and the model re-solved.

    With ``keep_points``, each MIP's outcome also carries the improving
    solutions HiGHS found on its way (``Outcome.others``).
    """

    def __init__(
        self,
        model: MatrixModel,
        options: SolverOptions,
        keep_points: bool = False,
        floor: float = 0.0,
    ) -> None:
        self.settings: dict[str, Any] = {
            "output_flag": False,
            "mip_improving_solution_save": keep_points,
        }
        self.gaps = _mip_gaps(options)
        self.floor = floor
        self.keep_points = keep_points
        if options.threads:
            self.settings["threads"] = int(options.threads)
        self.h = self._highs()
        self.integer = model.integer
        self.relaxed = False
        self.ran = False
        self.changed = False  # rows or integrality changed since the last solve
        self.idle = np.zeros(model.matrix.shape[0], dtype=int)
        self.row_ids = np.arange(model.matrix.shape[0])  # rows keep their id when others go
        self.next_id = model.matrix.shape[0]  # ids are never reused
        self.lp_basis: tuple[list[Any], list[Any]] | None = None
        lp = highspy.HighsLp()
        csc = model.matrix.tocsc()
        lp.num_col_, lp.num_row_ = csc.shape[1], csc.shape[0]
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = model.cost, model.lower, model.upper
        lp.offset_ = model.offset - floor  # HiGHS's relative gap: of the decision cost
        lp.row_lower_, lp.row_upper_ = model.row_lo, model.row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = (
            csc.indptr,
            csc.indices,
            csc.data,
        )
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in model.integer
        ]
        self.h.passModel(lp)

    def add_rows(self, rows: Rows) -> None:
        """Append cuts."""
        if not len(rows):
            return
        self.changed = True
        self.idle = np.r_[self.idle, np.zeros(len(rows), dtype=int)]
        self.row_ids = np.r_[self.row_ids, np.arange(self.next_id, self.next_id + len(rows))]
        self.next_id += len(rows)
        if self.lp_basis is not None:
            self.lp_basis[1].extend([highspy.HighsBasisStatus.kBasic] * len(rows))
        csr = rows.csr(len(self.integer))
        self.h.addRows(
            len(rows),
            np.array(rows.lo),
            np.array(rows.hi),
            csr.nnz,
            csr.indptr[:-1].astype(np.int32),
            csr.indices.astype(np.int32),
            csr.data,
        )

    def set_row_bounds(self, row: int, lo: float, hi: float) -> None:
        """Change one row's bounds (the level row, between levels)."""
        self.h.changeRowBounds(row, lo, hi)

    def row_dual(self, row: int) -> float | None:
        """The last LP's dual value of ``row``: d(objective) / d(row's bound)."""
        return float(self.h.getSolution().row_dual[row])

    def purge(self, first: int, age: int) -> int:
        """Delete the rows from ``first`` on that ``age`` optimal LPs in a row left unpriced.

        Rows after a deleted one move up. Returns how many were deleted.
        """
        idle = np.flatnonzero(self.idle >= age)
        return self._delete_rows(idle[idle >= first])

    def drop_slack(self, first: int, beyond: int = 0) -> int:
        """Delete the rows from ``first`` on that are slack (basic) in the last LP's basis.

        Only when there are more than ``beyond`` rows from ``first`` on.

        The LP's optimum stays optimal without them, so its bound stands;
        a MIP started next solves its root LP cold, in time that grows with
        the rows (on uk-councils at level 46, 17,800 rows: 17 s; the 6,500
        the optimum needs: 1.5 s). Returns how many were deleted.
        """
        basis = self.h.getBasis()
        if self.mip or not basis.valid or self.h.getNumRow() - first <= beyond:
            return 0
        basic = np.array(basis.row_status) == highspy.HighsBasisStatus.kBasic
        basic[:first] = False
        return self._delete_rows(np.flatnonzero(basic))

    def _delete_rows(self, rows: np.ndarray) -> int:
        """Delete rows (only basic ones keep the LP basis); rows after them move up."""
        rows = rows.astype(np.int32)
        if len(rows):
            self.changed = True
            self.h.deleteRows(len(rows), rows)
            self.idle = np.delete(self.idle, rows)
            self.row_ids = np.delete(self.row_ids, rows)
            self._drop_basis_rows(rows)
        return len(rows)

    def _drop_basis_rows(self, rows: np.ndarray) -> None:
        """Delete rows from the kept LP basis; forget it if one was nonbasic (it would not fit)."""
        if self.lp_basis is None:
            return
        cols, status = self.lp_basis
        if any(status[i] != highspy.HighsBasisStatus.kBasic for i in rows.tolist()):
            self.lp_basis = None
            return
        gone = set(rows.tolist())
        self.lp_basis = (cols, [s for i, s in enumerate(status) if i not in gone])

    def _age_rows(self) -> None:
        """Count, per row, the optimal LPs in a row in which its dual was zero."""
        solution = self.h.getSolution()
        if solution.dual_valid:
            priced = np.abs(np.array(solution.row_dual)) > 1e-9
            self.idle = np.where(priced, 0, self.idle + 1)

    def snapshot(self) -> Snapshot | None:
        """The last LP's basis, its rows named by id (rows come and go), or None if none."""
        if self.mip:
            return None
        basis = self.h.getBasis()
        if not basis.valid:
            return None
        rows = np.array([int(s) for s in basis.row_status], dtype=np.int8)
        nonbasic = np.flatnonzero(rows != BASIC)
        return Snapshot(
            np.array([int(s) for s in basis.col_status], dtype=np.int8),
            self.row_ids[nonbasic],
            rows[nonbasic],
        )

    def restore(self, snapshot: Snapshot | None) -> None:
        """Start the next LP from a :meth:`snapshot`; rows added since are basic.

        A row the snapshot held nonbasic may have been deleted since; the
        basis then lacks a basic column and HiGHS completes it (an alien
        basis).
        """
        if snapshot is None or self.mip:
            return
        rows = np.full(len(self.row_ids), BASIC, dtype=np.int8)
        at = np.searchsorted(self.row_ids, snapshot.row_ids)
        found = at < len(self.row_ids)
        found[found] = self.row_ids[at[found]] == snapshot.row_ids[found]
        rows[at[found]] = snapshot.row_status[found]
        basis = highspy.HighsBasis()
        basis.col_status = [STATUSES[s] for s in snapshot.col_status.tolist()]
        basis.row_status = [STATUSES[s] for s in rows.tolist()]
        basis.valid = True
        basis.alien = not found.all()
        self.h.setBasis(basis)

    def reduced_costs(self) -> np.ndarray | None:
        """The last LP's reduced costs (column duals), or None if it has none."""
        solution = self.h.getSolution()
        return np.array(solution.col_dual) if solution.dual_valid else None

    def set_col_bounds(self, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Change the bounds of some columns."""
        if len(cols):
            idx = np.asarray(cols, dtype=np.int32)
            self.h.changeColsBounds(len(idx), idx, np.asarray(lo, float), np.asarray(hi, float))

    def col_bounds(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current bounds of some columns."""
        lp = self.h.getLp()
        return np.array(lp.col_lower_)[cols], np.array(lp.col_upper_)[cols]

    def relax(self, relaxed: bool) -> None:
        """Drop or restore integrality; keep the LP's basis for the LP after the MIP."""
        if not relaxed:
            self._keep_basis()
        idx = np.flatnonzero(self.integer).astype(np.int32)
        kind = highspy.HighsVarType.kContinuous if relaxed else highspy.HighsVarType.kInteger
        self.h.changeColsIntegrality(len(idx), idx, np.array([kind] * len(idx)))
        self.relaxed = relaxed
        self.changed = True

    def solve(
        self,
        time_limit: float | None,
        start: np.ndarray | None = None,
        target: float = -math.inf,
        share: float = 1.0,
        watch: Watch | None = None,
    ) -> Outcome:
        """Solve; ``start`` is a full column vector to warm-start from.

        A MIP stops once it holds a point of objective at most ``target``
        (status ``target``), once its own gap is within ``share`` of the
        options' gaps, or soon after ``watch``, called with each improving
        point HiGHS finds, returns True (status ``time_limit``, the point
        kept). HiGHS holds the objective less ``floor``, so its relative gap
        is of the decision cost, as :class:`Proof`'s; every value returned
        has the floor added back.
        """
        clock_start = 0.0
        if self.ran and (self.changed or self.mip):
            self._refresh()
        elif self.ran:  # only bounds changed: HiGHS re-solves from its own state
            clock_start = self.h.getRunTime()
        self.ran, self.changed = True, False
        allowed = clock_start + max(0.0, float(time_limit)) if time_limit is not None else math.inf
        self.h.setOptionValue("time_limit", allowed)
        self.h.setOptionValue(
            "objective_target", float(target) - self.floor if self.mip else -math.inf
        )
        self.h.setOptionValue("mip_rel_gap", share * self.gaps[0])
        self.h.setOptionValue("mip_abs_gap", share * self.gaps[1])
        if start is not None:
            solution = highspy.HighsSolution()
            solution.col_value = list(start)
            solution.value_valid = True
            self.h.setSolution(solution)
        _claim_scheduler(int(self.settings.get("threads", 0)))
        if watch is not None and self.mip:
            self._watch(watch)
        self.h.run()
        if self._failed():
            self._retry()
        if not self.mip and self.h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            self._age_rows()
        return self._outcome()

    def _watch(self, watch: Watch) -> None:
        """Show ``watch`` each improving MIP point; interrupt once it returns True.

        HiGHS takes no interrupt from its improving-solution callback, so
        that callback raises a flag and its interrupt callback, called all
        through the search, acts on it. Both stay with this HiGHS object,
        which no later solve runs again: a MIP always starts on a new one
        (:meth:`_refresh`), and so does the LP after it (integrality changed).
        """
        stop = [False]

        def improving(event: Any) -> None:
            stop[0] = stop[0] or bool(watch(np.array(event.data_out.mip_solution)))

        def interrupt(event: Any) -> None:
            if stop[0]:
                event.interrupt()

        self.h.cbMipImprovingSolution.subscribe(improving)
        self.h.cbMipInterrupt.subscribe(interrupt)

    @property
    def mip(self) -> bool:
        """Whether a solve now is a MIP (integer columns, integrality not relaxed)."""
        return bool(self.integer.any()) and not self.relaxed

    def _keep_basis(self) -> None:
        basis = self.h.getBasis()
        if basis.valid:
            self.lp_basis = (list(basis.col_status), list(basis.row_status))

    def _failed(self) -> bool:
        status = self.h.getModelStatus()
        return status in (highspy.HighsModelStatus.kSolveError, highspy.HighsModelStatus.kNotset)

    def _retry(self) -> None:
        """Solve once more from no basis and without presolve.

        On the Benders master with many cuts, HiGHS occasionally stops in
        numerical trouble: from the warm basis (``Solve error``), or in the
        clean-up after presolve, where the postsolved point is dual infeasible
        and ``run`` ends with ``Not Set`` (seen on uk-councils at level 246 of
        a full curve). Without the basis and presolve, the same model solves.
        """
        self.h.clearSolver()
        self.h.setOptionValue("presolve", "off")
        self.h.run()
        self.h.setOptionValue("presolve", "choose")

    def _highs(self) -> highspy.Highs:
        h = _new_highs()
        for name, value in self.settings.items():
            h.setOptionValue(name, value)
        return h

    def _refresh(self) -> None:
        """Hand the model to a new HiGHS object, keeping the basis.

        After rows are added to a solved model, HiGHS keeps its internal
        state (scaling among it) from the first solve; on the Benders master
        the dual simplex then stalls for minutes (86,000 iterations on one
        uk-councils round) where the same model and basis passed afresh takes
        about 1,200 iterations and under a second. A new object also restarts
        HiGHS's clock: an LP's time limit counts every run of the object so far.
        Between solves that only change bounds (branch and cut's nodes), the
        object stays and the limit is offset by its clock instead.

        A MIP solve leaves no basis, so an LP after one starts from the last
        LP's basis (kept with its rows, cuts added since as basic slacks):
        cold, the first LP of a uk-councils level after a MIP took 30 s and
        28,000 iterations where its neighbours took 5.
        """
        basis = self.h.getBasis()
        if not basis.valid and self.relaxed and self.lp_basis is not None:
            basis = highspy.HighsBasis()
            basis.col_status, basis.row_status = self.lp_basis
            basis.valid = True
        lp = self.h.getLp()
        self.h = self._highs()
        self.h.passModel(lp)
        if basis.valid:
            self.h.setBasis(basis)

    def _has_point(self, status: highspy.HighsModelStatus, info: highspy.HighsInfo) -> bool:
        """Whether the run left a point: a feasible one, or an optimal LP's just outside tolerance.

        After unscaling, an optimal basis can break a row by a little more
        than the primal tolerance; HiGHS then reports the model optimal, the
        dual feasible and the primal infeasible. On uk-councils, level 191 of
        a serial curve from level 211 hit this in its first LP: without a
        point the LP rounds stopped and the level ended 2.6e-3 from its
        bound. With a feasible dual, the objective is still a valid bound and
        the point serves for separation.
        """
        if info.primal_solution_status == 2:
            return True
        optimal = status == highspy.HighsModelStatus.kOptimal
        dual_feasible = info.dual_solution_status == 2
        return not self.mip and optimal and dual_feasible and self.h.getSolution().value_valid

    def _improving(self) -> tuple[np.ndarray, ...]:
        """The MIP's improving solutions, oldest first; the last is the one it returns."""
        return tuple(np.array(found.col_value) for found in self.h.getSavedMipSolutions())

    def _outcome(self) -> Outcome:
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        kinds = highspy.HighsModelStatus
        if status in (kinds.kInfeasible, kinds.kUnboundedOrInfeasible):
            return Outcome("infeasible", None, math.inf, math.inf)
        has = self._has_point(status, info)
        values = np.array(self.h.getSolution().col_value) if has else None
        objective = info.objective_function_value + self.floor if has else math.inf
        mip = self.mip
        bound = info.mip_dual_bound + self.floor if mip else objective
        others = self._improving()[:-1] if mip and has and self.keep_points else ()
        if status == kinds.kOptimal:
            return Outcome("optimal", values, objective, bound if mip else objective, others)
        if status == kinds.kObjectiveTarget and values is not None:
            return Outcome("target", values, objective, bound, others)
        # HiGHS once stopped at its target without a point flagged feasible
        # (uk-councils, a serial curve at level 51): no point, as on a time-out
        stopped = (
            kinds.kTimeLimit,
            kinds.kInterrupt,
            kinds.kSolutionLimit,
            kinds.kIterationLimit,
            kinds.kObjectiveTarget,
        )
        if status in stopped or status == kinds.kUnknown:
            return Outcome("time_limit", values, objective, bound if mip else -math.inf, others)
        if status in (kinds.kSolveError, kinds.kNotset):  # failed twice: no point, no proof
            return Outcome("error", None, math.inf, -math.inf)
        raise SolverError(f"HiGHS stopped with status {self.h.modelStatusToString(status)}")


class PulpBackend:
    """The same interface over pulp: CBC (bundled) or HiGHS; rebuilt per solve."""

    def __init__(self, model: MatrixModel, options: SolverOptions, floor: float = 0.0) -> None:
        self.model = model
        self.options = options
        self.floor = floor
        self.extra: list[Rows] = []
        self.relaxed = False

    def add_rows(self, rows: Rows) -> None:
        """Append cuts."""
        if len(rows):
            self.extra.append(rows)

    def set_row_bounds(self, row: int, lo: float, hi: float) -> None:
        """Change one row's bounds (the level row, between levels)."""
        self.model.row_lo[row], self.model.row_hi[row] = lo, hi

    def relax(self, relaxed: bool) -> None:
        """Drop or restore integrality."""
        self.relaxed = relaxed

    def reduced_costs(self) -> np.ndarray | None:
        """Not read through pulp: None."""
        return None

    def set_col_bounds(self, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Change the bounds of some columns."""
        self.model.lower[cols], self.model.upper[cols] = lo, hi

    def col_bounds(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current bounds of some columns."""
        return self.model.lower[cols].copy(), self.model.upper[cols].copy()

    def snapshot(self) -> None:
        """Not read through pulp: None."""
        return None

    def restore(self, snapshot: Snapshot | None) -> None:
        """Nothing to restore: pulp solves from scratch."""

    def row_dual(self, row: int) -> float | None:
        """Not read through pulp: None."""
        return None

    def purge(self, first: int, age: int) -> int:
        """Keep every row: pulp rebuilds the model at each solve and reads no duals."""
        return 0

    def drop_slack(self, first: int, beyond: int = 0) -> int:
        """Keep every row: pulp reads no basis."""
        return 0

    def problem(self) -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
        """Build the pulp problem from the arrays, in bulk.

        CBC's own objective leaves out pulp's constant; a column fixed at 1
        carries the model's offset less ``floor`` into it, so that CBC's
        relative gap is of the decision cost, as :class:`Proof`'s.
        """
        prob, cols = to_pulp(self.model, self.extra, relaxed=self.relaxed)
        if self.floor:
            shift = pulp.LpVariable("floor_shift", lowBound=1, upBound=1)
            objective = prob.objective + (self.model.offset - self.floor) * shift
            objective.constant = self.floor
            prob.setObjective(objective)
        return prob, cols

    def solve(
        self,
        time_limit: float | None,
        start: np.ndarray | None = None,
        target: float = -math.inf,
        share: float = 1.0,
        watch: Watch | None = None,
    ) -> Outcome:
        """Solve with CBC through pulp, reading CBC's own status and bound from its log.

        ``share`` as in :meth:`HighsBackend.solve`; ``target`` and ``watch``
        are not passed (pulp's CBC command has no objective target and no
        callbacks), so CBC runs to its gaps.
        """
        gap, gap_abs = (share * g for g in _mip_gaps(self.options))
        prob, cols = self.problem()
        if start is not None:
            start = np.clip(start, self.model.lower, self.model.upper)
            for var, value in zip(cols, start.tolist(), strict=True):
                var.setInitialValue(value)
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "cbc.log"
            solver = pulp.PULP_CBC_CMD(
                msg=False,
                timeLimit=time_limit,
                gapRel=gap,
                gapAbs=gap_abs,
                threads=self.options.threads,
                warmStart=start is not None,
                logPath=str(log),
            )
            prob.solve(solver)
            text = log.read_text(errors="replace") if log.exists() else ""
        mip = not self.relaxed and bool(self.model.integer.any())
        return _cbc_outcome(prob, cols, text, mip=mip, gap=gap, gap_abs=gap_abs)


def to_pulp(
    model: MatrixModel, extra: list[Rows], relaxed: bool = False
) -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
    """Turn a matrix model (plus extra rows) into a pulp problem."""
    prob = pulp.LpProblem("consolidation", pulp.LpMinimize)
    names = model.names or [f"x{k}" for k in range(len(model.cost))]
    cols = [
        pulp.LpVariable(
            name,
            lowBound=lo if np.isfinite(lo) else None,
            upBound=hi if np.isfinite(hi) else None,
            cat=pulp.LpInteger if (flag and not relaxed) else pulp.LpContinuous,
        )
        for name, lo, hi, flag in zip(
            names, model.lower.tolist(), model.upper.tolist(), model.integer.tolist(), strict=True
        )
    ]
    nz = np.flatnonzero(model.cost)
    prob += pulp.LpAffineExpression(
        [(cols[k], float(model.cost[k])) for k in nz], constant=model.offset
    )
    blocks = [(model.matrix, model.row_lo, model.row_hi)]
    blocks += [(r.csr(len(cols)), np.array(r.lo), np.array(r.hi)) for r in extra]
    count = 0
    for matrix, lo, hi in blocks:
        for r in range(matrix.shape[0]):
            seg = slice(matrix.indptr[r], matrix.indptr[r + 1])
            expr = pulp.LpAffineExpression(
                [
                    (cols[k], v)
                    for k, v in zip(
                        matrix.indices[seg].tolist(), matrix.data[seg].tolist(), strict=True
                    )
                ]
            )
            count += 1
            if lo[r] == hi[r]:
                prob += (expr == lo[r]), f"r{count}"
                continue
            if np.isfinite(lo[r]):
                prob += (expr >= lo[r]), f"r{count}lo"
            if np.isfinite(hi[r]):
                prob += (expr <= hi[r]), f"r{count}hi"
    return prob, cols


def _cbc_outcome(
    prob: pulp.LpProblem,
    cols: list[pulp.LpVariable],
    log: str,
    mip: bool,
    gap: float,
    gap_abs: float = 0.0,
) -> Outcome:
    result = re.search(r"Result - (.+)", log)
    said = result.group(1).lower() if result else ""
    if "infeasible" in said or prob.status == pulp.LpStatusInfeasible:
        return Outcome("infeasible", None, math.inf, math.inf)
    values = np.array([v.varValue if v.varValue is not None else 0.0 for v in cols])
    objective = float(pulp.value(prob.objective) or 0.0)
    bound = _cbc_bound(log, objective)
    if "optimal" in said or (not mip and prob.status == pulp.LpStatusOptimal):
        if not mip:
            return Outcome("optimal", values, objective, objective)
        # CBC proved optimality within its ratio gap (of its own objective, which
        # lacks pulp's constant) and prints no bound then.
        own = re.search(r"Objective value:\s+(-?[\d.eE+-]+)", log)
        scale = abs(float(own.group(1))) if own else abs(objective)
        return Outcome(
            "optimal", values, objective, max(bound, objective - max(gap * scale, gap_abs))
        )
    if "stopped" in said or "time" in said:
        has = prob.sol_status in (pulp.LpSolutionIntegerFeasible, pulp.LpSolutionOptimal)
        return Outcome("time_limit", values if has else None, objective if has else math.inf, bound)
    raise SolverError(f"CBC ended unexpectedly: {said or pulp.LpStatus[prob.status]}")


def _cbc_bound(log: str, objective: float) -> float:
    """CBC's proven bound, shifted by any constant pulp keeps out of CBC's objective."""
    found = re.search(r"Lower bound:\s+(-?[\d.eE+-]+)", log)
    reported = re.search(r"Objective value:\s+(-?[\d.eE+-]+)", log)
    if found is None or reported is None:
        return -math.inf
    return objective - (float(reported.group(1)) - float(found.group(1)))


def backend(
    model: MatrixModel, options: SolverOptions, keep_points: bool = False, floor: float = 0.0
) -> HighsBackend | PulpBackend:
    """The backend for ``options.solver``; ``keep_points``, ``floor``: see :class:`HighsBackend`."""
    if options.solver == "highs":
        return HighsBackend(model, options, keep_points, floor)
    return PulpBackend(model, options, floor)


def _mip_gaps(options: SolverOptions) -> tuple[float, float]:
    """A MIP's relative and absolute gaps for ``options``: :class:`Proof`'s two.

    The relative gap applies to the objective less the floor the backend
    holds; the absolute one is at least HiGHS's default, 1e-6.
    """
    return float(options.gap), max(float(options.gap_abs), 1e-6)


_SCHEDULER: dict[str, int] = {}
_BANNER: dict[str, bool] = {}


def _new_highs() -> highspy.Highs:
    """A new HiGHS object; the process's first is made with standard output closed.

    From highspy 1.16, the first object of a process prints HiGHS's banner
    on standard output before any option can turn output off: a curve
    printed it above its progress bar once for each worker process.
    """
    if _BANNER:
        return highspy.Highs()
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER["made"] = True
    return h


def _claim_scheduler(threads: int) -> None:
    """Size HiGHS's thread scheduler for a run with option ``threads`` (0: HiGHS's own choice).

    HiGHS keeps one scheduler per process, sized by the first run. A later
    run asking for a different number of threads fails at once, its model
    status left ``Not Set`` (highspy 1.15: 2 threads, then 1; 1.16 also the
    default, then 1), and the engine saw a level without a point or a
    bound. On a change the scheduler is reset, so that the next run sizes
    it anew. Runs in one process that share their options (a curve, a
    sweep, a Dask worker's threads) never reset it.
    """
    if _SCHEDULER.get("threads", threads) != threads:
        highspy.Highs.resetGlobalScheduler(True)
    _SCHEDULER["threads"] = threads


def clock() -> float:
    """Monotonic seconds."""
    return time.perf_counter()
