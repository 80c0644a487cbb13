"""Single levels of uk-councils from scratch, as ``consolidate solve --level K`` runs them.

Each level is solved alone (a new solver: no start, no cuts from other
levels, no time limit unless given) until proven within the gap, twice in
this process: as the engine runs it, and as the baseline with in-out
separation off (every LP round cuts at its own point, ``STABILITY = 0``).
The table goes to stdout and, unless ``--no-write``, to the ``levels``
section of BENCHMARKS.md. Target (issue #4): any single level proven within
1e-4 in under 30 seconds.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)

import optimizer
from optimizer import engine
from optimizer.engine import solve_level
from optimizer.solve import SolverOptions

SECTION = "levels"
PACKAGES = ("highspy", "numpy", "pandas", "scipy")
TARGET = 30.0


@dataclass
class Run:
    """One level solved one way."""

    status: str
    gap: float
    seconds: float
    lps: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="41,42,43,44,45,46,47,48,49,50,52,55,60,65,150,282",
                        help="comma-separated levels (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds per level (default: none, as consolidate solve)")
    parser.add_argument("--gap", type=float, default=1e-4)
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline runs")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    return parser.parse_args(argv)


def solve(
    instance: optimizer.Instance, level: int, options: SolverOptions, stability: float
) -> Run:
    """Solve ``level`` from scratch with in-out separation at ``stability``."""
    engine.STABILITY = stability
    result = solve_level(instance, level, options)
    return Run(result.status, result.gap, result.seconds["total"], result.iterations)


def row(level: int, ours: Run, base: Run | None) -> list[object]:
    cells: list[object] = [level, ours.status, f"{ours.gap:.2e}", f"{ours.seconds:.1f}", ours.lps]
    if base is None:
        return [*cells, "-", "-", "-"]
    return [*cells, base.status, f"{base.seconds:.1f}", f"{base.seconds / ours.seconds:.2f}"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code = common.revision()
    instance = optimizer.load("uk-councils")
    options = SolverOptions(time_limit=args.time_limit, gap=args.gap)
    stability = engine.STABILITY
    rows, runs = [], []
    for level in (int(k) for k in args.levels.split(",")):
        ours = solve(instance, level, options, stability)
        base = None if args.no_baseline else solve(instance, level, options, 0.0)
        engine.STABILITY = stability
        runs.append(ours)
        rows.append(row(level, ours, base))
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    headers = ["level", "status", "gap", "s", "LPs and MIPs", "baseline status", "baseline s",
               "baseline/ours"]
    fast = sum(r.status == "optimal" and r.seconds < TARGET for r in runs)
    met = "met" if fast == len(runs) else "not met"
    body = "\n\n".join([
        "## Single levels of uk-councils, from scratch",
        f"Command: `python benchmarks/{' '.join(['levels.py', *(argv or sys.argv[1:])])}`  \n"
        + common.environment(PACKAGES, code),
        "Each level solved alone, as `consolidate solve --level K` does (no start, no cuts"
        " from other levels, no time limit), until proven within the gap"
        f" ({args.gap:g}); `s` is the engine's total. Baseline, in the same process: the"
        " same, with in-out separation off (each LP round cuts at its own point).",
        common.markdown_table(headers, rows),
        f"Target: any single level proven in under {TARGET:.0f} s: {met}"
        f" ({fast} of {len(runs)}; slowest {max(r.seconds for r in runs):.1f} s).",
    ])
    print(body)
    if not args.no_write:
        print(f"wrote the {SECTION!r} section of {common.write_section(SECTION, body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
