"""Benchmark: the consolidation curve on uk-councils, against the classical model in pulp.

Prints a table and writes the ``curve`` section of BENCHMARKS.md. The baseline
runs in the same process: the straightforward approach, the compact model
(every allowed body-site-band assignment as a variable) built in pulp and
solved level by level from scratch with pulp's HiGHS, on a few levels.

    python benchmarks/curve.py --time-limit 10 --classical-levels 282 --classical-time-limit 300

The curve runs as ``consolidate curve`` runs it: local worker processes, one
per CPU (``--executor serial`` solves every level in this process instead).
A long level set is summed up instead of listed (the levels left above the
gap, and the slowest); ``--levels all`` goes to its own section,
``curve-all``::

    python benchmarks/curve.py --levels all --time-limit 30 --classical-levels ""
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import time
from typing import Any

import common
import pandas as pd
import pulp

import optimizer
from optimizer.curve import (
    EMPTY,
    CurveOptions,
    consolidation_curve,
    default_levels,
    parse_levels,
)
from optimizer.engine import LevelSolver, precheck
from optimizer.executors import ExecutorOptions
from optimizer.formulation import build_compact, structure
from optimizer.solve import SolverOptions, to_pulp

PACKAGES = ("highspy", "pulp", "numpy", "pandas", "networkx")
LISTED = 40  # levels beyond which the table sums the run up instead of listing every level
SLOWEST = 8


def classical(instance: optimizer.Instance, level: int, limit: float) -> dict[str, Any]:
    """Build the compact model in pulp and solve it with pulp's HiGHS; time both."""
    began = time.perf_counter()
    opened = closed = instance.sites["status"].to_numpy() == "__none__"
    precheck(instance, level, opened, closed)
    st = structure(instance)
    model, _ = build_compact(st, level, whole_body=False)
    problem, _ = to_pulp(model, [])
    built = time.perf_counter() - began
    solver = pulp.HiGHS(msg=False, timeLimit=limit, gapRel=1e-4)
    problem.solve(solver)
    total = time.perf_counter() - began
    value = pulp.value(problem.objective)
    return {
        "build": built,
        "total": total,
        "status": pulp.LpStatus[problem.status],
        "objective": float(value) if value is not None else math.nan,
    }


def level_table(frame: pd.DataFrame) -> str:
    """Every level: total, bound, gap, status and its own seconds."""
    rows = [
        [
            row["level"],
            f"{row['total'] / 1e6:,.1f}",
            f"{row['lower_bound'] / 1e6:,.1f}",
            f"{row['gap']:.2e}",
            row["status"],
            f"{row['seconds']:.1f}",
        ]
        for row in frame.to_dict("records")
    ]
    return common.markdown_table(
        ["level", "total GBP m", "bound GBP m", "gap", "status", "s"], rows
    )


def summed_up(frame: pd.DataFrame, gap: float) -> str:
    """A long curve in a few lines: statuses, seconds, the levels above ``gap``, the slowest."""
    solved = frame[~frame["status"].isin(EMPTY)]
    above = solved[solved["gap"] > gap]
    counts = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())
    listed = pd.concat([above, solved.nlargest(SLOWEST, "seconds")]).drop_duplicates("level")
    lines = [
        f"Levels: {counts}; solved levels within {gap:g}: {len(solved) - len(above)} of"
        f" {len(solved)}; worst gap {solved['gap'].max():.2e}.",
        f"Seconds per solved level: median {solved['seconds'].median():.2f},"
        f" largest {solved['seconds'].max():.1f}, sum {solved['seconds'].sum():.0f}.",
        "",
        level_table(listed.sort_values("level", ascending=False)),
        "",
        f"The table lists the levels above {gap:g} and the {SLOWEST} slowest.",
    ]
    return "\n".join(lines)


def baseline_section(instance: optimizer.Instance, args: argparse.Namespace) -> str:
    """The classical model against the engine alone, level by level; empty without levels."""
    compare = []
    for level in [int(k) for k in args.classical_levels.split(",") if k]:
        ours_started = time.perf_counter()
        ours = LevelSolver(instance, SolverOptions(time_limit=args.time_limit)).solve(level)
        ours_s = time.perf_counter() - ours_started
        base = classical(instance, level, args.classical_time_limit)
        compare.append(
            [
                level,
                f"{ours.objective / 1e6:,.1f}",
                f"{ours.gap:.2e}",
                f"{ours_s:.1f}",
                f"{base['objective'] / 1e6:,.1f}",
                base["status"],
                f"{base['build']:.1f}",
                f"{base['total']:.1f}",
                f"{base['total'] / ours_s:.1f}",
            ]
        )
    if not compare:
        return ""
    headers = [
        "level",
        "ours GBP m",
        "ours gap",
        "ours s",
        "classical GBP m",
        "classical status",
        "classical build s",
        "classical s",
        "classical/ours",
    ]
    return (
        "Baseline in the same process: the compact model built in pulp and solved by pulp's HiGHS"
        " from scratch at each level, against one level solved by the engine alone (its own"
        " start-up included, no curve warm start).\n\n"
        f"{common.markdown_table(headers, compare)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="default")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per level (ours)")
    parser.add_argument("--classical-levels", default="282", help="levels for the pulp baseline")
    parser.add_argument("--classical-time-limit", type=float, default=300.0)
    parser.add_argument("--executor", choices=("processes", "serial"), default="processes")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    instance = optimizer.load("uk-councils")
    levels = parse_levels(args.levels, len(instance.bodies))
    options = CurveOptions(levels=tuple(levels), solver=SolverOptions(time_limit=args.time_limit))
    executor = ExecutorOptions(args.executor, workers=args.workers)
    began = time.perf_counter()
    curve = consolidation_curve(instance, options, executor=executor)
    wall = time.perf_counter() - began
    peak = common.peak_mb()  # before the baseline, whose models are far larger
    frame = curve.to_frame()
    table = level_table(frame) if len(frame) <= LISTED else summed_up(frame, options.solver.gap)
    baseline = baseline_section(instance, args)
    command = (
        f"python benchmarks/curve.py --levels {args.levels} --time-limit {args.time_limit:g}"
        f" --classical-levels {shlex.quote(args.classical_levels)}"
        f" --classical-time-limit {args.classical_time_limit:g} --executor {args.executor}"
        + (f" --workers {args.workers}" if args.workers else "")
    )
    where = "one process"
    if args.executor == "processes":
        count = args.workers or os.cpu_count() or 1
        where = f"{count} local worker processes (as `consolidate curve` runs by default)"
    every = args.levels.strip().lower() == "all"
    which = "the default set" if levels == default_levels(len(instance.bodies)) else args.levels
    body = (
        f"## Consolidation curve, uk-councils{', every level' if every else ''}\n\n"
        f"Command: `{command}`  \n"
        f"{common.environment(PACKAGES)}\n\n"
        f"{len(levels)} levels ({which}) in {wall:.1f} s wall,"
        f" {args.time_limit:g} s limit per level, {where}; `s` is each level's own time.\n\n"
        f"{table}\n\n"
        f"Peak memory of the curve (resident): {peak:,.0f} MB, the largest of this process and its"
        " workers.\n"
        + ("\n" + baseline if baseline else "")
    )
    print(body)
    if not args.no_write:
        common.write_section("curve-all" if every else "curve", body)


if __name__ == "__main__":
    main()
