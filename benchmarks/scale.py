"""Benchmark: how a curve's time grows with bodies, levels and workers, on synthetic instances.

Generates seeded synthetic instances (``optimizer/synthetic.py``), solves
each curve at the requested gap with one worker (in this process) and with
more (local processes), prints a table and writes the ``scale`` section of
BENCHMARKS.md. Ratios are against the smallest run in the same process:
``x time`` divides by the smallest instance's time (same levels and workers),
``speed-up`` divides the one-worker time by this row's. Each configuration
runs ``--repeats`` times; the table shows medians.

    python benchmarks/scale.py --sizes 500,1000,2000,5000 --level-counts 10,20 --workers 1,2

``--built-sizes`` builds, without solving, what a level needs at larger sizes:
the instance, its structure, the set cover that proves the fewest agencies
and the Benders master, each size in a fresh process so that its peak memory
is its own. It shows why a size is out of reach before any level is tried.

Levels: ``N`` levels spread geometrically (denser low) from the status quo
down to ``--lowest`` of the bodies (at least 4): below a few per cent of the
bodies the synthetic model's radii leave no feasible grouping.

``--sites N`` lets agencies open only at the N largest bodies and any body
they leave out of reach, the other bodies' sites closed
(:func:`optimizer.synthetic.candidate_sites`), as when agencies may sit at
councils and trusts but not at every school. The levels then run from the
number of such sites down to the fewest agencies that reach every body (the
set cover), and the table goes to the ``scale-sites`` section instead.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

import optimizer
from optimizer.curve import EMPTY, CurveOptions, consolidation_curve
from optimizer.engine import LevelSolver
from optimizer.executors import ExecutorOptions
from optimizer.solve import SolverOptions
from optimizer.synthetic import write_dataset

PACKAGES = ("highspy", "numpy", "pandas", "scipy", "distributed")
TARGET = (5000, 20, 1e-3, 1800.0)  # bodies, levels, gap, seconds on a 2-core machine


def levels_for(n_bodies: int, count: int, lowest: float) -> tuple[int, ...]:
    """``count`` levels from ``n_bodies`` down to ``lowest`` of it, spread geometrically."""
    return spread(n_bodies, max(4, round(lowest * n_bodies)), count)


def spread(top: int, low: int, count: int) -> tuple[int, ...]:
    """``count`` levels from ``top`` down to ``low``, spread geometrically (denser low)."""
    return tuple(sorted({round(v) for v in np.geomspace(low, top, count)}, reverse=True))


def levels_of(
    instance: optimizer.Instance, count: int, lowest: float, sites: int | None
) -> tuple[int, ...]:
    """The levels of a curve: :func:`levels_for`; with ``sites``, open-able sites to fewest."""
    if sites is None:
        return levels_for(len(instance.bodies), count, lowest)
    fewest = LevelSolver(instance, SolverOptions()).smallest_level()
    return spread(candidates(instance), fewest, count)


def candidates(instance: optimizer.Instance) -> int:
    """How many sites agencies may open at (not ``closed``)."""
    return int((instance.sites["status"] != "closed").sum())


def run_one(
    instance: optimizer.Instance, levels: tuple[int, ...], workers: int, gap: float, limit: float
) -> dict[str, Any]:
    """Solve one curve; wall seconds, worst gap and how many levels were proven."""
    executor = (
        ExecutorOptions("serial") if workers == 1 else ExecutorOptions("processes", workers=workers)
    )
    options = CurveOptions(levels, solver=SolverOptions(gap=gap, time_limit=limit))
    began = time.perf_counter()
    frame = consolidation_curve(instance, options, executor=executor).to_frame()
    seconds = time.perf_counter() - began
    solved = frame[~frame["status"].isin(EMPTY)]
    proven = int(((frame["status"] == "optimal") | (frame["status"] == "infeasible")).sum())
    slowest = solved.nlargest(3, "seconds")
    return {
        "seconds": seconds,
        "slowest": ", ".join(f"{r.level} ({r.seconds:.0f} s)" for r in slowest.itertuples()),
        "worst_gap": float(solved["gap"].max()) if len(solved) else float("nan"),
        "proven": proven,
        "levels": len(levels),
        "statuses": frame["status"].value_counts().to_dict(),
    }


def measure_build(n_bodies: int, seed: int, sites: int | None) -> dict[str, Any]:
    """Build (not solve) an instance's level machinery in a fresh process; sizes and seconds."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_build, (n_bodies, seed, sites))


def _build(n_bodies: int, seed: int, sites: int | None) -> dict[str, Any]:
    """Generate, load and build one size (the worker of :func:`measure_build`)."""
    row: dict[str, Any] = {"bodies": n_bodies}
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        began = time.perf_counter()
        folder = write_dataset(Path(tmp) / f"synth-{n_bodies}", n_bodies, seed, sites)
        instance = optimizer.load(folder, folder / "model.toml")
        row["load"] = time.perf_counter() - began
    began = time.perf_counter()
    solver = LevelSolver(instance, SolverOptions())
    row["structure"] = time.perf_counter() - began
    st = solver.st
    row.update(clients=st.n_clients, copies=st.n_copies, pairs=len(st.lst_copy))
    began = time.perf_counter()
    row["fewest"] = solver.smallest_level()
    row["cover"] = time.perf_counter() - began
    began = time.perf_counter()
    solver._master()
    row["master"] = time.perf_counter() - began
    row["peak_mb"] = common.peak_mb()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="500,1000,2000,5000")
    parser.add_argument("--level-counts", default="10,20")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--gap", type=float, default=1e-3)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level")
    parser.add_argument("--lowest", type=float, default=0.04, help="lowest level, share of bodies")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--built-sizes", default="", help="sizes only built, not solved")
    parser.add_argument(
        "--sites", type=int, default=None, help="candidate sites per instance (default: every body)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    code = common.revision()
    sizes = [int(v) for v in args.sizes.split(",")]
    counts = [int(v) for v in args.level_counts.split(",")]
    workers = [int(v) for v in args.workers.split(",")]
    results: dict[tuple[int, int, int], dict[str, Any]] = {}
    prepared: dict[int, tuple[float, float]] = {}
    sites: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        for n in sizes:
            began = time.perf_counter()
            folder = write_dataset(Path(tmp) / f"synth-{n}", n, args.seed, args.sites)
            instance = optimizer.load(folder, folder / "model.toml")
            prepared[n] = (time.perf_counter() - began, float(instance.spend["spend"].sum()))
            sites[n] = candidates(instance)
            for count in counts:
                levels = levels_of(instance, count, args.lowest, args.sites)
                for w in workers:
                    runs = [
                        run_one(instance, levels, w, args.gap, args.time_limit)
                        for _ in range(args.repeats)
                    ]
                    result = dict(runs[0])
                    result["seconds"] = statistics.median(r["seconds"] for r in runs)
                    result["level_range"] = f"{levels[0]}..{levels[-1]}"
                    results[(n, count, w)] = result
                    print(n, count, w, f"{result['seconds']:.1f}s", result["statuses"], flush=True)
    built = [measure_build(int(n), args.seed, args.sites) for n in args.built_sizes.split(",") if n]
    body = _section(args, code, results, prepared, built, sites)
    print(body)
    if not args.no_write:
        common.write_section("scale" if args.sites is None else "scale-sites", body)


def _section(
    args: argparse.Namespace,
    code: str,
    results: dict[tuple[int, int, int], dict[str, Any]],
    prepared: dict[int, tuple[float, float]],
    built: list[dict[str, Any]],
    sites: dict[int, int],
) -> str:
    smallest = min(n for n, _, _ in results)
    rows = []
    for (n, count, w), r in sorted(results.items()):
        base = results.get((smallest, count, w))
        single = results.get((n, count, 1))
        rows.append(
            [
                n,
                r["level_range"],
                count,
                w,
                f"{r['seconds']:.1f}",
                f"{r['worst_gap']:.1e}",
                f"{r['proven']}/{r['levels']}",
                f"{r['seconds'] / base['seconds']:.1f}" if base else "-",
                f"{single['seconds'] / r['seconds']:.2f}" if single else "-",
            ]
        )
    table = common.markdown_table(
        [
            "bodies",
            "levels",
            "n levels",
            "workers",
            "seconds",
            "worst gap",
            "proven",
            "x time (vs smallest)",
            "speed-up (vs 1 worker)",
        ],
        rows,
    )
    setup = ", ".join(f"{n}: {s:.1f} s, GBP {v / 1e9:,.1f}bn" for n, (s, v) in prepared.items())
    slowest = "; ".join(
        f"{n:,} bodies, {count} levels, {w} workers: {r['slowest']}"
        for (n, count, w), r in sorted(results.items())
    )
    command = (
        f"python benchmarks/scale.py --sizes {args.sizes} --level-counts {args.level_counts}"
        f" --workers {args.workers} --gap {args.gap:g} --time-limit {args.time_limit:g}"
        f" --lowest {args.lowest:g} --seed {args.seed} --repeats {args.repeats}"
        + (f" --built-sizes {args.built_sizes}" if args.built_sizes else "")
        + (f" --sites {args.sites}" if args.sites is not None else "")
    )
    if args.sites is None:
        title, where = "Scale: synthetic instances", "every body a candidate site"
    else:
        title = "Scale: synthetic instances, the largest bodies as candidate sites"
        listed = ", ".join(f"{n:,} bodies: {k}" for n, k in sites.items())
        where = (
            f"agencies may open only at the {args.sites} largest bodies and any body they leave"
            f" out of reach ({listed}), the other sites closed; levels from those sites down to"
            " the fewest that reach every body"
        )
    return (
        f"## {title}\n\n"
        f"Command: `{command}`  \n"
        f"{common.environment(PACKAGES, code)}\n\n"
        f"Instances from `consolidate datasets synth` (seeded; {where});"
        f" each curve solved to a relative gap of {args.gap:g} with {args.time_limit:g} s per"
        " level at most. One worker is the curve in this process (one solver, cuts kept from"
        " level to level); more workers are local processes (`--executor processes`), each"
        " with one solver thread. `proven` counts levels solved within the gap (or proven"
        f" infeasible); `seconds` is wall time, median of {args.repeats}.\n\n"
        f"{table}\n\n"
        f"Slowest levels (each level's own seconds, second tries included): {slowest}.\n\n"
        f"Generating and loading each instance (not in `seconds`): {setup}.\n\n"
        f"Target: {TARGET[0]:,} bodies, {TARGET[1]} levels each within {TARGET[2]:g} in under"
        f" {TARGET[3] / 60:.0f} minutes on 2 cores: {_verdict(results, built)}.\n"
        + _built_table(built)
    )


def _built_table(built: list[dict[str, Any]]) -> str:
    """The sizes built but not solved: model size, seconds per stage, peak memory."""
    if not built:
        return ""
    rows = [
        [
            f"{r['bodies']:,}",
            f"{r['clients']:,}",
            f"{r['copies']:,}",
            f"{r['pairs'] / 1e6:.1f}m",
            f"{r['load']:.1f}",
            f"{r['structure']:.1f}",
            f"{r['cover']:.1f} ({r['fewest']})",
            f"{r['master']:.1f}",
            f"{r['peak_mb']:,.0f}",
        ]
        for r in built
    ]
    headers = [
        "bodies",
        "clients",
        "band copies",
        "allowed pairs",
        "load s",
        "structure s",
        "set cover s (fewest)",
        "master s",
        "peak MB",
    ]
    return (
        "\nBuilt, not solved (each size in a fresh process; the master holds the cuts of"
        " every site open; `peak MB` is that process's largest resident size, before any"
        " LP):\n\n"
        f"{common.markdown_table(headers, rows)}\n"
    )


def _verdict(
    results: dict[tuple[int, int, int], dict[str, Any]], built: list[dict[str, Any]]
) -> str:
    n, count, _, limit = TARGET
    runs = [r for (b, c, _), r in results.items() if b == n and c == count]
    if not runs:
        sized = [r for r in built if r["bodies"] == n]
        if sized:
            return (
                "not met; not solved here, only built: the master alone takes"
                f" {sized[0]['peak_mb']:,.0f} MB in each worker before its first LP (below)"
            )
        return "not run here"
    best = min(runs, key=lambda r: r["seconds"])
    met = best["proven"] == best["levels"] and best["seconds"] < limit
    return (
        f"{'met' if met else 'not met'} (best run {best['seconds']:.0f} s,"
        f" {best['proven']}/{best['levels']} levels proven)"
    )


if __name__ == "__main__":
    main()
