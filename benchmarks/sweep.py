"""Benchmark: a 16-scenario sweep on uk-councils, Dask against local processes.

The sweep of ``models/sweep-example.toml`` (discount rates x0.5 or x1, spend
x1 or x1.2, 4 spend draws each: 16 curves on the default levels), with the
solve settings given here, run in the same process with two local worker
processes (``--executor processes --workers 2``) and on a new 2-worker Dask
``LocalCluster`` (``--executor dask --workers 2``, its start-up included).
Prints a table and writes the ``sweep`` section of BENCHMARKS.md: wall
times (median of ``--repeats``), their ratio, and whether the two tables
agree row for row (``seconds`` aside).

    python benchmarks/sweep.py --time-limit 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import common
import pandas as pd

from optimizer.curve import EMPTY
from optimizer.executors import ExecutorOptions
from optimizer.sweep import load_sweep, run_sweep

PACKAGES = ("highspy", "numpy", "pandas", "dask", "distributed")
EXAMPLE = common.REPO / "models" / "sweep-example.toml"
TARGET = 1.2  # Dask wall time within this factor of local processes


def sweep_file(folder: Path, time_limit: float, gap: float, levels: str) -> Path:
    """The example sweep with this run's solve settings."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("time_limit = 10 ", f"time_limit = {time_limit:g} ")
    text = text.replace("gap = 1e-4", f"gap = {gap:g}")
    text = text.replace('levels = "default"', f'levels = "{levels}"')
    path = folder / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    spec = load_sweep(path)
    if (spec.solver.time_limit, spec.solver.gap, spec.levels) != (time_limit, gap, levels):
        raise SystemExit(f"could not set the solve settings in a copy of {EXAMPLE}")
    return path


def differences(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows whose results differ between two sweep tables (``seconds`` aside)."""
    keys = ["scenario", "level"]
    left, right = a.drop(columns="seconds"), b.drop(columns="seconds")
    both = left.merge(right, on=keys, suffixes=("", "_other"))
    columns = [c for c in left.columns if c not in keys]
    differ = pd.Series(False, index=both.index)
    for column in columns:
        x, y = both[column], both[f"{column}_other"]
        differ |= ~((x == y) | (x.isna() & y.isna()))
    return both.loc[differ, [*keys, "status", "status_other", "total", "total_other"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--gap", type=float, default=1e-4)
    parser.add_argument("--levels", default="default")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    code = common.revision()
    executors = {
        "processes": ExecutorOptions("processes", workers=2),
        "dask": ExecutorOptions("dask", workers=2),
    }
    times: dict[str, list[float]] = {k: [] for k in executors}
    tables: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        path = sweep_file(Path(tmp), args.time_limit, args.gap, args.levels)
        for repeat in range(args.repeats):
            for name, options in executors.items():
                began = time.perf_counter()
                tables[name] = run_sweep(path, Path(tmp) / f"{name}-{repeat}", executor=options)
                times[name].append(time.perf_counter() - began)
                print(name, repeat, f"{times[name][-1]:.1f}s", flush=True)
    body = _section(args, code, times, tables)
    print(body)
    if not args.no_write:
        common.write_section("sweep", body)


def _section(
    args: argparse.Namespace,
    code: str,
    times: dict[str, list[float]],
    tables: dict[str, pd.DataFrame],
) -> str:
    local = statistics.median(times["processes"])
    dask = statistics.median(times["dask"])
    frame = tables["processes"]
    statuses = frame["status"].value_counts().to_dict()
    differ = differences(tables["processes"], tables["dask"])
    proven = ["optimal", "infeasible"]
    both = differ["status"].isin(proven) & differ["status_other"].isin(proven)
    table = common.markdown_table(
        ["executor", "workers", "seconds (median)", "runs", "vs processes"],
        [
            ["processes", 2, f"{local:.1f}", len(times["processes"]), "1.00"],
            [
                "dask (new LocalCluster)",
                2,
                f"{dask:.1f}",
                len(times["dask"]),
                f"{dask / local:.2f}",
            ],
        ],
    )
    solved = frame[~frame["status"].isin(EMPTY)]
    command = (
        f"python benchmarks/sweep.py --time-limit {args.time_limit:g} --gap {args.gap:g}"
        f" --levels {args.levels} --repeats {args.repeats}"
    )
    if differ.empty:
        same = "identical: every row of the two tables agrees exactly (`seconds` aside)."
    else:
        same = (
            f"{len(differ)} of {len(frame)} rows differ: {int((~both).sum())} where a run"
            " stopped at the time limit (the result depends on timing),"
            f" {int(both.sum())} where both runs proved the level:"
            f" {', '.join(f'{r.scenario}/{r.level}' for r in differ.itertuples())}."
        )
    return (
        "## Sweep: Dask against local processes, uk-councils\n\n"
        f"Command: `{command}`  \n"
        f"{common.environment(PACKAGES, code)}\n\n"
        f"The sweep of `models/sweep-example.toml`: {frame['scenario'].nunique()} scenarios,"
        f" {frame['level'].nunique()} levels each, {args.time_limit:g} s per level, gap"
        f" {args.gap:g}; each scenario is one task (its whole curve, one solver thread).\n\n"
        f"{table}\n\n"
        f"Target: Dask within {TARGET:g}x of local processes:"
        f" {'met' if dask <= TARGET * local else 'not met'} ({dask / local:.2f}x).  \n"
        f"Results: {same}  \n"
        f"Level statuses: {statuses}; worst gap of solved levels {solved['gap'].max():.1e}.\n"
    )


if __name__ == "__main__":
    main()
