"""OR-Library p-median benchmark: the engine against the published optima.

Solves pmed1-pmed40 with the engine (HiGHS), checks each objective against
OR-Library's ``pmedopt`` (MATCH / MISMATCH) and, on the instances small enough,
times the classical formulation built in pulp the straightforward way::

    min sum_ij d[i,j] x[i,j]   s.t.  sum_j x[i,j] = 1,  x[i,j] <= y[j],  sum_j y[j] = p,
    y binary, 0 <= x <= 1

Both prove the objective to within 0.5 (the optima are integers). The
table goes to stdout and, unless ``--no-write``, to the ``orlib`` section of
BENCHMARKS.md. Run ``python benchmarks/orlib.py --help`` for the options, e.g.
``python benchmarks/orlib.py --instances pmed1,pmed2 --no-write`` for a quick run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)
import numpy as np
import pulp

from optimizer import orlib
from optimizer.engine import SolveResult, solve_level
from optimizer.instance import Instance
from optimizer.solve import SolverOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "orlib"
SECTION = "orlib"
TOLERANCE = 0.5  # the published optima are integers
PACKAGES = ("highspy", "pulp", "numpy", "scipy", "pandas")
ALL = [f"pmed{k}" for k in range(1, 41)]


@dataclass
class Classical:
    """One run of the classical pulp model."""

    status: str
    objective: float
    bound: float
    build: float
    solve: float

    @property
    def total(self) -> float:
        return self.build + self.solve


@dataclass
class Row:
    """One instance: our result and, if run, the classical one."""

    instance: str
    n: int
    p: int
    optimum: float
    ours: float = math.nan
    bound: float = math.nan
    status: str = "error"
    build: float = math.nan
    solve: float = math.nan
    total: float = math.nan
    error: str = ""
    claimed: str = ""
    classical: Classical | None = None

    @property
    def match(self) -> bool:
        return abs(self.ours - self.optimum) < TOLERANCE

    @property
    def proven(self) -> bool:
        return self.match and self.status == "optimal"

    @property
    def gap(self) -> float:
        """Proven gap on the OR-Library objective, (ours - bound) / ours."""
        return (self.ours - self.bound) / self.ours if self.ours > 0 else math.nan

    @property
    def ratio(self) -> float:
        if self.classical is None or not self.total > 0:
            return math.nan
        return self.classical.total / self.total


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default=",".join(ALL),
                        help="comma-separated instance names (default: pmed1..pmed40)")
    parser.add_argument("--time-limit", type=float, default=120.0,
                        help="engine time limit per instance, s (default 120)")
    parser.add_argument("--classical-max-n", type=int, default=300,
                        help="run the classical pulp model only when n <= this (default 300)")
    parser.add_argument("--classical-time-limit", type=float, default=60.0,
                        help="solver time limit of the classical model, s (default 60)")
    parser.add_argument("--classical-solver", choices=("highs", "cbc"), default="highs",
                        help="solver of the classical model through pulp (default highs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="solver threads (default: the solver's)")
    parser.add_argument("--data", type=Path, default=DATA,
                        help=f"orlib data folder (default {DATA})")
    parser.add_argument("--spend", type=float, default=orlib.PMED_SPEND,
                        help="every body's spend (default 1e6, MODEL.md's p-median case); the"
                             " objective does not change, only the constant total spend")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    return parser.parse_args(argv)


def run_ours(instance: Instance, p: int, row: Row, args: argparse.Namespace) -> SolveResult | None:
    """Solve with the engine, filling ``row``; errors are recorded, not raised."""
    gap = orlib.gap_for(instance, TOLERANCE)
    options = SolverOptions(time_limit=args.time_limit, gap=gap, threads=args.threads)
    began = time.perf_counter()
    try:
        result = solve_level(instance, p, options)
    except Exception as exc:  # a crash is a benchmark result too
        row.error = f"{type(exc).__name__}: {exc}"
        row.total = time.perf_counter() - began
        return None
    row.ours = orlib.orlib_objective(result, instance)
    row.bound = result.bound - float(instance.spend["spend"].sum())
    row.claimed = result.status
    row.status = result.status if result.evaluation.feasible else "infeasible grouping"
    row.build, row.solve, row.total = (result.seconds[k] for k in ("build", "solve", "total"))
    return result


def classical_model(d: np.ndarray, p: int) -> pulp.LpProblem:
    """The textbook p-median model, built with pulp's dicts and lpSum."""
    n = len(d)
    nodes = range(n)
    prob = pulp.LpProblem("pmedian", pulp.LpMinimize)
    y = pulp.LpVariable.dicts("y", nodes, cat=pulp.LpBinary)
    x = pulp.LpVariable.dicts("x", [(i, j) for i in nodes for j in nodes], lowBound=0, upBound=1)
    prob += pulp.lpSum(float(d[i, j]) * x[i, j] for i in nodes for j in nodes)
    for i in nodes:
        prob += pulp.lpSum(x[i, j] for j in nodes) == 1
    for i in nodes:
        for j in nodes:
            prob += x[i, j] <= y[j]
    prob += pulp.lpSum(y[j] for j in nodes) == p
    return prob


def run_classical(d: np.ndarray, p: int, args: argparse.Namespace) -> Classical:
    """Build and solve the classical model; status "optimal" only when proven."""
    began = time.perf_counter()
    prob = classical_model(d, p)
    built = time.perf_counter()
    limit = args.classical_time_limit
    if args.classical_solver == "cbc":
        solver: pulp.LpSolver = pulp.PULP_CBC_CMD(msg=False, timeLimit=limit, gapRel=1e-9,
                                                  gapAbs=TOLERANCE, threads=args.threads)
    else:
        solver = pulp.HiGHS(msg=False, timeLimit=limit, gapRel=1e-9, gapAbs=TOLERANCE,
                            threads=args.threads)
    prob.solve(solver)
    done = time.perf_counter()
    objective = float(pulp.value(prob.objective) or math.nan)
    status, bound = _classical_status(prob, args.classical_solver, objective)
    return Classical(status, objective, bound, built - began, done - built)


def _classical_status(prob: pulp.LpProblem, solver: str, objective: float) -> tuple[str, float]:
    if solver == "highs":
        import highspy

        highs = prob.solverModel
        optimal = highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        bound = float(highs.getInfo().mip_dual_bound)
        return ("optimal" if optimal else "time_limit"), bound
    optimal = prob.sol_status == pulp.LpSolutionOptimal
    return ("optimal" if optimal else "time_limit"), (objective if optimal else math.nan)


def run_instance(name: str, optimum: float, args: argparse.Namespace) -> Row:
    """Read, solve with the engine, then (if small enough) with the classical model."""
    instance, p = orlib.read_pmed(args.data / "pmed" / f"{name}.txt", spend=args.spend)
    n = len(instance.bodies)
    row = Row(name, n, p, optimum)
    run_ours(instance, p, row, args)
    if n <= args.classical_max_n:
        row.classical = run_classical(instance.distances, p, args)
    return row


# --- reporting -----------------------------------------------------------

HEADERS = ["instance", "n", "p", "optimum", "ours", "check", "status", "gap", "build s", "solve s",
           "total s", "classical build s", "classical s", "classical status", "classical/ours"]


def _num(value: float, digits: int = 2) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _ours(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.0f}" if abs(value - round(value)) < 1e-6 else f"{value:.3f}"


def cells(row: Row) -> list[str]:
    """The table cells of one row."""
    c = row.classical
    ratio = "-" if c is None else ("" if c.status == "optimal" else ">=") + _num(row.ratio)
    c_status = "-"
    if c is not None:
        c_status = c.status if c.status == "optimal" else f"{c.status} (best {_ours(c.objective)})"
    check = "MATCH" if row.match else ("ERROR" if row.error else "MISMATCH")
    return [row.instance, str(row.n), str(row.p), f"{row.optimum:.0f}", _ours(row.ours), check,
            row.status, "-" if not math.isfinite(row.gap) else f"{100 * row.gap:.3f}%",
            _num(row.build), _num(row.solve), _num(row.total),
            "-" if c is None else _num(c.build), "-" if c is None else _num(c.total), c_status,
            ratio]


def _listing(items: list[str]) -> str:
    return "; ".join(items) if items else "none"


def summary(rows: list[Row], wall: float, time_limit: float) -> list[str]:
    """Plain-text summary lines."""
    both = [r.ratio for r in rows if r.classical and r.classical.status == "optimal" and r.proven]
    tried = [r.ratio for r in rows if r.classical and math.isfinite(r.ratio)]
    median_both = common.median(both)
    median_tried = common.median(tried)
    wrong = [f"{r.instance} ({_ours(r.ours)} vs {r.optimum:.0f})"
             for r in rows if r.status == "optimal" and not r.match]
    stopped = [f"{r.instance} ({_ours(r.ours)}, gap {100 * r.gap:.3f}%)"
               for r in rows if r.status == "time_limit"]
    late = [f"{r.instance} ({r.total:.0f} s)" for r in rows if r.total > 1.05 * time_limit]
    lines = [
        f"Matched the published optimum: {sum(r.match for r in rows)} of {len(rows)}; "
        f"matched and proven optimal (gap <= 0.5): {sum(r.proven for r in rows)} of {len(rows)}.",
        f"Claimed optimal but above the published optimum (invalid bound): {_listing(wrong)}.",
        f"Stopped at the time limit: {_listing(stopped)}.",
        f"Errors: {_listing([r.instance for r in rows if r.error])}"
        f"{' (messages below)' if any(r.error for r in rows) else ''}.",
        f"Ran past the {time_limit:g} s time limit by over 5%: {_listing(late)}.",
        f"Engine time: {sum(r.total for r in rows if math.isfinite(r.total)):.1f} s in all; "
        f"whole run (reading, engine, classical) {wall:.1f} s.",
    ]
    if tried:
        timeouts = sum(1 for r in rows if r.classical and r.classical.status != "optimal")
        lines.append(
            f"Classical/ours time ratio: median {_num(_or_nan(median_both))} over the"
            f" {len(both)} instances both proved optimal; median"
            f" {_num(_or_nan(median_tried))} over all"
            f" {len(tried)} classical runs ({timeouts} stopped at the classical time limit, where"
            " the ratio is a lower bound)."
        )
    errors = [f"{r.instance}: {r.error}" for r in rows if r.error]
    lines += [f"Error: {e}" for e in errors]
    return lines


def section(
    rows: list[Row], wall: float, args: argparse.Namespace, argv: list[str], code: str
) -> str:
    """The markdown section for BENCHMARKS.md."""
    command = " ".join(["python benchmarks/orlib.py", *argv])
    parts = [
        "## OR-Library p-median (pmed)",
        f"Command: `{command}`  \n{common.environment(PACKAGES, code)}",
        f"Every vertex is a body with spend {args.spend:,.0f} and a candidate site hosted by"
        " itself; the engine's total minus the summed spend is the p-median objective"
        " (MODEL.md, special cases). Engine: `solve_level` with HiGHS (highspy), relative gap"
        " set so that the proven gap on the OR-Library objective is at most 0.5 (the optima"
        f" are integers), time limit {args.time_limit:g} s per instance. `gap` = (ours - bound)"
        " / ours on the OR-Library objective; `build s` / `solve s` / `total s` are the"
        " engine's own timings (reading the file and the shortest paths are excluded, as for"
        " the classical model).",
        f"Classical: the textbook x[i,j] <= y[j] model built in pulp (LpVariable.dicts, lpSum,"
        f" one constraint per pair; y binary, x continuous), solved by pulp's"
        f" {args.classical_solver.upper() if args.classical_solver == 'cbc' else 'HiGHS'} with"
        f" absolute gap 0.5 and a {args.classical_time_limit:g} s solver limit, for n <="
        f" {args.classical_max_n}; `classical s` is build plus solve, and `classical/ours` divides"
        " it by the engine's `total s`.",
        common.markdown_table(HEADERS, [cells(r) for r in rows]),
        "\n".join(f"- {line}" for line in summary(rows, wall, args.time_limit)),
    ]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if not args.data.is_dir():
        print(f"OR-Library data not found at {args.data}", file=sys.stderr)
        return 2
    optima = orlib.optima("pmed", root=args.data)["optimum"].astype(float)
    names = [s.strip() for s in args.instances.split(",") if s.strip()]
    unknown = [s for s in names if s not in optima.index]
    if unknown:
        print(f"unknown instances: {', '.join(unknown)}", file=sys.stderr)
        return 2
    code = common.revision()
    began = time.perf_counter()
    rows = []
    print(" | ".join(HEADERS), flush=True)
    for name in names:
        row = run_instance(name, float(optima[name]), args)
        rows.append(row)
        print(" | ".join(cells(row)), flush=True)
    wall = time.perf_counter() - began
    print("\n".join(summary(rows, wall, args.time_limit)))
    if not args.no_write:
        path = common.write_section(SECTION, section(rows, wall, args, argv, code))
        print(f"wrote the {SECTION!r} section of {path}")
    return 0 if all(r.match for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
