"""Branch and Benders cut: the exact step of a level, on the master LP.

A best-first branch and bound over the master's binary columns (agencies
``y`` and band copies ``w``) that separates Benders cuts at every node, the
branch-and-Benders-cut of Duran-Mateluna, Ales & Elloumi (EJOR 2023) run as
a loop, since HiGHS has no lazy-constraint callback. Each node solves the
master LP with its branching bounds, adds the cuts violated at its point
and re-solves until none is (every cut is valid everywhere, so later nodes
start from them), and is pruned once its LP value is within the gap of the
incumbent. Its LP point is rounded to a grouping; an integral point that no
cut separates is a grouping the master prices exactly.

Against HiGHS's own MIP on the same master, which sees only the cuts found
before it starts and so stops at points the cuts misprice and must be run
again: on OR-Library pmed38 (p = 5), two MIPs of about 30 s each against
57 nodes in about 16 s. And it keeps to its time limit: HiGHS's root heuristics do not look
at the clock (on uk-councils at level 237, a MIP given 14.7 s took 76 s).

A child's LP starts from its parent's last basis (``snapshot`` and
``restore`` of the backend, rows named by id, since cuts come and go
between the two): best-first jumps across the tree, and from the basis the
last node left, HiGHS took a median 588 simplex iterations a node on
OR-Library pmed36 against 235 from the parent's.

Branching is by pseudo-costs (the LP's rise per unit of change seen on
each column so far, up and down; the product of the two expected rises
decides), falling back on the most fractional column until a column has
been branched on both ways.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizer.formulation import TOLERANCE, Rows
from optimizer.heuristics import better
from optimizer.solve import Proof, Snapshot, clock

NODE_ROUNDS = 100  # cut rounds at most per node
SCORE_FLOOR = 1e-6  # of an expected rise, so a zero on one side does not erase the other

Separator = Callable[[np.ndarray], tuple[Rows, int]]
Grouper = Callable[[np.ndarray, bool], Any]


@dataclass(order=True)
class Node:
    """An open node: its parent's LP value (a bound on it), then the order it was made in."""

    bound: float
    order: int
    fixed: tuple[tuple[int, float], ...] = field(compare=False)
    change: float = field(compare=False, default=0.0)  # the last fixed column's move
    basis: Snapshot | None = field(compare=False, default=None)  # the parent's last LP basis


@dataclass
class Search:
    """What a search found: the best grouping, the proven bound, nodes and LPs solved, cuts."""

    best: Any
    bound: float
    nodes: int = 0
    lps: int = 0
    cuts: int = 0
    floor: float = math.inf  # the least LP value of a node pruned within the gap, or left unsolved


class BranchAndCut:
    """Best-first branch and Benders cut over columns ``cols`` of a relaxed master.

    Parameters
    ----------
    master : HighsBackend or PulpBackend
        The master, relaxed (integrality off), its bounds those of the level.
    cols : numpy.ndarray
        The binary columns to branch on (``y`` and ``w``).
    separate : callable
        ``separate(values) -> (rows, count)``: the cuts violated at an LP point.
    group : callable
        ``group(values, exact) -> grouping or None``: a grouping from an LP
        point, ``exact`` when the point is integral and no cut separates it.
    proof : Proof
        The gaps at which a node is pruned and the search ends.
    cut_row0, drop_from : int
        The first cut row, and the cuts beyond which slack ones are dropped.
    listener : callable, optional
        Called after each node with the best grouping (or None) and the
        least bound of the open nodes.
    """

    def __init__(
        self,
        master: Any,
        cols: np.ndarray,
        separate: Separator,
        group: Grouper,
        proof: Proof,
        cut_row0: int,
        drop_from: int,
        listener: Callable[[Any, float], None] | None = None,
    ) -> None:
        self.master = master
        self.cols = cols
        self.separate = separate
        self.group = group
        self.proof = proof
        self.cut_row0 = cut_row0
        self.drop_from = drop_from
        self.listener = listener
        self.lo, self.hi = master.col_bounds(cols)
        self.gain = np.zeros((2, len(cols)))  # summed LP rise per unit change: down, up
        self.seen = np.zeros((2, len(cols)), dtype=int)
        self.order = 0

    def run(self, best: Any, bound: float, deadline: float) -> Search:
        """Search until the gap is proven or ``deadline`` (a :func:`clock` time) passes.

        ``best`` is the incumbent (a grouping with ``cost``, or None) and
        ``bound`` the level's bound so far; the result's bound is at least it.
        """
        found = Search(best, bound)
        heap = [Node(bound, 0, ())]
        try:
            while heap and clock() < deadline:
                if found.best is not None and self.proof.holds(found.best.cost, heap[0].bound):
                    break
                node = heapq.heappop(heap)
                found.nodes += 1
                for child in self._visit(node, found, deadline):
                    heapq.heappush(heap, child)
                if self.listener is not None and heap:
                    self.listener(found.best, max(found.bound, min(heap[0].bound, found.floor)))
        finally:
            self.master.set_col_bounds(self.cols, self.lo, self.hi)
        left = min(
            heap[0].bound if heap else math.inf,
            found.floor,
            found.best.cost if found.best is not None else math.inf,
        )
        if math.isfinite(left):
            found.bound = max(found.bound, left)
        return found

    def _visit(self, node: Node, found: Search, deadline: float) -> list[Node]:
        """Solve a node's LP with cuts; return its children (none if pruned or solved)."""
        lo, hi = self.lo.copy(), self.hi.copy()
        for at, value in node.fixed:
            lo[at] = hi[at] = value
        self.master.set_col_bounds(self.cols, lo, hi)
        self.master.restore(node.basis)
        solved = self._cut_loop(node, found, deadline)
        if solved is None:
            return [node] if clock() >= deadline else []
        value, values, priced = solved
        self._learn(node, value)
        point = values[self.cols]
        free = lo < hi
        integral = not _fractional(point, np.ones(len(point), dtype=bool)).any()
        found.best = better(found.best, self.group(values, priced and integral))
        if integral and priced:  # a grouping the master prices exactly: solved
            return []
        if integral or (found.best is not None and self.proof.holds(found.best.cost, value)):
            found.floor = min(found.floor, value)  # pruned (or cut NODE_ROUNDS times, unpriced)
            return []
        at, basis = self._pick(point, free), self.master.snapshot()
        return [
            self._child(node, value, point, at, 1.0, basis),
            self._child(node, value, point, at, 0.0, basis),
        ]

    def _cut_loop(
        self, node: Node, found: Search, deadline: float
    ) -> tuple[float, np.ndarray, bool] | None:
        """The node's LP value and point, cut until no cut is violated or it can be pruned.

        None if the node is infeasible, pruned, or out of time (an LP that
        ends otherwise leaves the node's bound standing).
        """
        for _ in range(NODE_ROUNDS):
            out = self.master.solve(max(0.01, deadline - clock()))
            found.lps += 1
            if out.status != "optimal":
                if out.status != "infeasible" and clock() < deadline:
                    found.floor = min(found.floor, node.bound)
                return None
            if found.best is not None and self.proof.holds(found.best.cost, out.objective):
                found.floor = min(found.floor, out.objective)
                return None
            self.master.drop_slack(self.cut_row0, self.drop_from)
            rows, count = self.separate(out.values)
            if count == 0:
                return out.objective, out.values, True
            found.cuts += count
            self.master.add_rows(rows)
            if clock() >= deadline:
                return None
        return out.objective, out.values, False

    def _learn(self, node: Node, value: float) -> None:
        """Record the LP's rise per unit change on the column the node was branched on."""
        if not node.fixed:
            return
        at, side = node.fixed[-1]
        up = int(side > 0.5)
        self.gain[up, at] += max(0.0, value - node.bound) / max(node.change, TOLERANCE)
        self.seen[up, at] += 1

    def _pick(self, point: np.ndarray, free: np.ndarray) -> int:
        """The column to branch on: best pseudo-cost product, else the most fractional."""
        candidates = np.flatnonzero(_fractional(point, free))
        x = point[candidates]
        if not self.seen.any(axis=1).all():
            return int(candidates[np.argmax(np.minimum(x, 1.0 - x))])
        down = self._expected(0)[candidates] * x
        up = self._expected(1)[candidates] * (1.0 - x)
        score = np.maximum(down, SCORE_FLOOR) * np.maximum(up, SCORE_FLOOR)
        return int(candidates[np.argmax(score)])

    def _expected(self, side: int) -> np.ndarray:
        """Each column's mean rise per unit change on one side; the mean of all where unseen."""
        seen = self.seen[side] > 0
        mean = self.gain[side] / np.maximum(self.seen[side], 1)
        return np.where(seen, mean, mean[seen].mean())

    def _child(
        self,
        node: Node,
        value: float,
        point: np.ndarray,
        at: int,
        side: float,
        basis: Snapshot | None,
    ) -> Node:
        self.order += 1
        change = 1.0 - point[at] if side > 0.5 else point[at]
        return Node(value, self.order, (*node.fixed, (at, side)), float(change), basis)


def _fractional(point: np.ndarray, free: np.ndarray) -> np.ndarray:
    return free & (point > TOLERANCE) & (point < 1.0 - TOLERANCE)
