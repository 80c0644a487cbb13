"""The ``consolidate`` command: a thin typer shell over the Python API.

Exit codes: 0 success, 2 bad input, 3 infeasible (or a grouping that breaks
a rule), 4 solver trouble, 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from optimizer import catalog
from optimizer.curve import (
    EMPTY,
    CurveOptions,
    Listener,
    consolidation_curve,
    curve_summary,
    level_limit,
    parse_levels,
    solve_one,
)
from optimizer.engine import Listener as LevelListener
from optimizer.engine import SolveResult, proof_of, write_model
from optimizer.errors import DataValidationError, InfeasibleError, OptimizerError, SolverError
from optimizer.evaluate import Evaluation, evaluate, status_open
from optimizer.executors import executor_options
from optimizer.results import (
    output_folder,
    read_groupings,
    writable_file,
    writable_folder,
    write_groupings,
    write_json,
)
from optimizer.run import Run, open_run, run_inputs
from optimizer.solve import DEFAULT_GAP, DEFAULT_TIME_LIMIT, Proof, SolverOptions

app = typer.Typer(
    name="consolidate",
    help=(
        "How far should a government consolidate its buying, and what does that save?\n\n"
        "Example: consolidate solve --data toy --level 3 --out out/toy-3"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(
    help="List, inspect and export the shipped datasets.\n\nExample: consolidate datasets list",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")
console = Console()
errors = Console(stderr=True, soft_wrap=True)

DataOpt = Annotated[
    str,
    typer.Option("--data", help="A dataset folder, or a shipped dataset name (toy, uk-councils)."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", help="A model TOML file or shipped model name; default: the dataset's own."
    ),
]

SolverOpt = Annotated[str, typer.Option("--solver", help="highs (default) or cbc.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Solver threads.")]
GapOpt = Annotated[
    float,
    typer.Option(
        "--gap",
        help="Relative gap at which a level counts as proven: (total - bound) over the"
        " decision cost, the total less the purchase floor (see README).",
    ),
]
GapAbsOpt = Annotated[
    float,
    typer.Option(
        "--gap-abs", help="Absolute gap, GBP/yr: a level within it of its bound is proven too."
    ),
]
KeepOpenOpt = Annotated[
    str, typer.Option("--keep-open", help="Site ids forced open, comma separated.")
]
KeepClosedOpt = Annotated[
    str, typer.Option("--keep-closed", help="Site ids forced closed, comma separated.")
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where tasks run: serial, processes (default) or dask (a new LocalCluster, "
        "or the cluster of --scheduler).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="A running Dask scheduler, tcp://HOST:PORT (implies dask)."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", help="Worker processes (processes, or a new LocalCluster)."),
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Procurement consolidation optimizer."""


@app.command("evaluate")
def evaluate_command(
    groupings: Annotated[Path, typer.Option("--groupings", help="CSV: body_id,category,site_id.")],
    data: DataOpt = "toy",
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Check a grouping against every rule and print its cost breakdown.

    Sites whose status is open in sites.csv are open (and cost their fixed
    cost) whether or not a row names them.

    Example: consolidate evaluate --data toy --model models/toy.toml --groupings g.csv
    """
    instance = catalog.load(data, model)
    result = evaluate(instance, read_groupings(groupings), status_open(instance))
    if as_json:
        console.print_json(json.dumps(_evaluation_payload(result)))
    else:
        _print_evaluation(result)
    if not result.feasible:
        raise typer.Exit(3)


def _evaluation_payload(result: Evaluation) -> dict[str, object]:
    return {
        "level": result.level,
        "feasible": result.feasible,
        "breakdown": result.breakdown,
        "open_sites": result.open_sites,
        "violations": [
            {"rule": v.rule, "message": v.message, "rows": list(v.rows)} for v in result.violations
        ],
    }


def _print_evaluation(result: Evaluation) -> None:
    table = Table(title=f"Cost breakdown at level {result.level} (GBP/yr)")
    table.add_column("term")
    table.add_column("GBP/yr", justify="right")
    for term, value in result.breakdown.items():
        table.add_row(term, f"{value:,.2f}")
    console.print(table)
    for violation in result.violations:
        errors.print(f"[red]violated[/red] {escape(str(violation))}", highlight=False)


def _sites_option(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _level(value: str) -> int | None:
    if value == "best":
        return None
    try:
        level = int(value)
    except ValueError:
        raise DataValidationError(
            [f"(--level) | expected a whole number or 'best', got {value!r}"]
        ) from None
    if level < 1:
        raise DataValidationError([f"(--level) | must be at least 1, got {level}"])
    return level


@app.command("solve")
def solve_command(
    level: Annotated[
        str, typer.Option("--level", help="Number of agencies, or 'best' to let the model choose.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for groupings.csv and summary.json.")
    ] = None,
    data: DataOpt = "uk-councils",
    model: ModelOpt = None,
    solver: SolverOpt = "highs",
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            help="Seconds in all (the greedy start's included); the best grouping so far and "
            "its bound are returned.",
        ),
    ] = DEFAULT_TIME_LIMIT,
    gap: GapOpt = DEFAULT_GAP,
    gap_abs: GapAbsOpt = 0.0,
    threads: ThreadsOpt = None,
    keep_open: KeepOpenOpt = "",
    keep_closed: KeepClosedOpt = "",
    write_lp: Annotated[
        Path | None, typer.Option("--write-lp", help="Write the model as an LP file and stop.")
    ] = None,
) -> None:
    """Find the optimal grouping at one consolidation level, with a proven bound.

    Example: consolidate solve --data uk-councils --level 60 --out out/level-60
    """
    options = SolverOptions(
        solver=solver, time_limit=time_limit, gap=gap, threads=threads, gap_abs=gap_abs
    )
    chosen = _level(level)
    instance = catalog.load(data, model)
    opened, closed = _sites_option(keep_open), _sites_option(keep_closed)
    if write_lp is not None:
        path = writable_file(write_lp, "--write-lp")
        write_model(instance, chosen, path, keep_open=opened, keep_closed=closed)
        console.print(f"wrote {write_lp}")
        return
    held = nullcontext() if out is None else output_folder(out, "solve")
    with held, _solve_progress(chosen, proof_of(instance, options)) as listen:
        result = solve_one(
            instance, chosen, options, keep_open=opened, keep_closed=closed, listener=listen
        )
        if out is not None:
            write_groupings(out / "groupings.csv", result.groupings)
            write_json(out / "summary.json", result.summary())
    _print_result(result, out)


@contextmanager
def _solve_progress(level: int | None, proof: Proof) -> Iterator[LevelListener | None]:
    """A rich status line of a solve (phase, best, bound, gap, elapsed), on a terminal only.

    The gap is ``proof``'s: relative to the decision cost, as the result's.
    """
    if not errors.is_terminal:
        yield None
        return
    columns = (
        TextColumn(f"[bold]level {'best' if level is None else level}"),
        TextColumn("{task.fields[phase]}"),
        TextColumn("best {task.fields[best]}"),
        TextColumn("bound {task.fields[bound]}"),
        TextColumn("gap {task.fields[gap]}"),
        TimeElapsedColumn(),
    )
    progress = Progress(*columns, console=errors, transient=False)
    task = progress.add_task("solve", total=None, phase="starting", best="-", bound="-", gap="-")

    def listen(phase: str, best: float, bound: float) -> None:
        gap = "-"
        if math.isfinite(best) and math.isfinite(bound):
            gap = f"{proof.relative(best, bound):.1e}"
        progress.update(task, phase=phase, best=_money(best), bound=_money(bound), gap=gap)

    progress.start()
    try:
        yield listen
    finally:
        progress.stop()


def _money(value: float) -> str:
    """GBP/yr for the progress line: millions when large; '-' when not finite."""
    if not math.isfinite(value):
        return "-"
    return f"{value / 1e6:,.1f}m" if abs(value) >= 1e8 else f"{value:,.0f}"


def _print_result(result: SolveResult, out: Path | None) -> None:
    title = (
        f"Level {result.level}: {result.status}, gap {result.gap:.2e} (GBP {result.gap_gbp:,.0f})"
    )
    table = Table(title=title)
    table.add_column("term")
    table.add_column("GBP/yr", justify="right")
    for term, value in result.breakdown.items():
        table.add_row(term, f"{value:,.0f}")
    table.add_row("proven lower bound", f"{result.bound:,.0f}")
    console.print(table)
    console.print(
        f"{len(result.open_sites)} agencies; {result.seconds['total']:.1f} s "
        f"(build {result.seconds['build']:.1f} s) with {result.solver}"
    )
    if out is not None:
        console.print(f"wrote {out / 'groupings.csv'} and {out / 'summary.json'}")


@app.command("curve")
def curve_command(
    out: Annotated[
        Path, typer.Option("--out", help="Run folder: curve.csv, groupings/, summary.json.")
    ],
    data: DataOpt = "uk-councils",
    model: ModelOpt = None,
    levels: Annotated[
        str,
        typer.Option(
            "--levels",
            help="'default', 'all' (status quo down to 4) or a list like 380,200,100..90,50.",
        ),
    ] = "default",
    min_level: Annotated[
        int | None, typer.Option("--min-level", help="Drop levels below this.")
    ] = None,
    max_level: Annotated[
        int | None, typer.Option("--max-level", help="Drop levels above this.")
    ] = None,
    solver: SolverOpt = "highs",
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="Seconds per level for the exact solve.")
    ] = DEFAULT_TIME_LIMIT,
    gap: GapOpt = DEFAULT_GAP,
    gap_abs: GapAbsOpt = 0.0,
    threads: ThreadsOpt = None,
    keep_open: KeepOpenOpt = "",
    keep_closed: KeepClosedOpt = "",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out, skipping finished levels.")
    ] = False,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Sweep the consolidation curve: the best grouping and its proof at every level.

    Example: consolidate curve --data uk-councils --model models/uk-default.toml --out out/uk
    """
    solving = SolverOptions(
        solver=solver, time_limit=time_limit, gap=gap, threads=threads, gap_abs=gap_abs
    )
    where = executor_options(executor, scheduler, workers)
    instance = catalog.load(data, model)
    chosen = parse_levels(
        levels, len(instance.bodies), min_level, max_level, most=level_limit(instance)
    )
    options = CurveOptions(
        levels=tuple(chosen),
        solver=solving,
        keep_open=tuple(_sites_option(keep_open)),
        keep_closed=tuple(_sites_option(keep_closed)),
    )
    with _curve_progress(len(chosen)) as listen:
        curve = consolidation_curve(
            instance,
            options,
            out,
            resume=resume,
            on_level=listen,
            inputs=run_inputs(data, model),
            executor=where,
        )
    console.print(_curve_table(curve.to_frame()))
    console.print(_recommendation(curve_summary(curve.to_frame(), curve.status_quo, 0.0)))
    console.print(f"wrote {out / 'curve.csv'}, {out / 'groupings'} and {out / 'summary.json'}")


def _recommendation(summary: dict[str, Any]) -> str:
    if "recommended_level" not in summary:
        return "no level has a grouping: nothing to recommend"
    near = ", ".join(str(k) for k in summary["within_1pct"])
    saving = summary["recommended_savings"]
    share = 100 * saving / summary["status_quo_total"] if summary["status_quo_total"] else 0.0
    amount = f"GBP {saving / 1e6:,.1f}m" if abs(saving) >= 1e6 else f"GBP {saving:,.0f}"
    tied = summary.get("tied_levels", [summary["recommended_level"]])
    why = "lowest total" if len(tied) < 2 else "fewest agencies of the tied levels"
    text = (
        f"recommended level: {summary['recommended_level']} agencies ({why}; saves "
        f"{amount}/yr, {share:.2f}%); within 1% of it: {near}"
    )
    if len(tied) > 1:
        text += f"\nlevels {', '.join(str(k) for k in tied)} are tied within their proven gaps"
    return text


@contextmanager
def _curve_progress(total: int) -> Iterator[Listener]:
    """A rich progress bar shown from the moment the run folder is checked."""
    columns = (
        TextColumn("[bold]levels"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("worst gap {task.fields[gap]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=errors, transient=False)
    task = progress.add_task("curve", total=total, gap="-")
    gaps: dict[int, float] = {}  # by level: a level tried twice counts with its better row

    def listen(row: dict[str, Any] | None, done: int, _total: int) -> None:
        if not progress.live.is_started:
            progress.start()
        if row is not None and row["status"] not in EMPTY:
            gaps[int(row["level"])] = float(row["gap"])
        progress.update(task, completed=done, gap=f"{max(gaps.values(), default=0.0):.1e}")

    try:
        yield listen
    finally:
        if progress.live.is_started:
            progress.stop()


def _curve_table(frame: pd.DataFrame) -> Table:
    scale, unit = (1e6, "GBP m") if frame["total"].max() >= 1e8 else (1e3, "GBP k")
    table = Table(title=f"Consolidation curve ({unit}/yr)")
    for column in ("level", "total", "savings", "savings %", "lower bound", "gap", "status", "s"):
        table.add_column(
            column, justify="left" if column == "status" else "right", no_wrap=column == "status"
        )
    for row in frame.to_dict("records"):
        if row["status"] in EMPTY:
            bound = row["lower_bound"]
            shown = f"{bound / scale:,.1f}" if math.isfinite(bound) else "-"
            table.add_row(
                str(row["level"]),
                "-",
                "-",
                "-",
                shown,
                "-",
                str(row["status"]),
                f"{row['seconds']:.1f}",
            )
            continue
        table.add_row(
            str(row["level"]),
            f"{row['total'] / scale:,.1f}",
            f"{row['savings'] / scale:,.1f}",
            f"{row['savings_pct']:.2f}",
            f"{row['lower_bound'] / scale:,.1f}",
            f"{row['gap']:.1e}",
            str(row["status"]),
            f"{row['seconds']:.1f}",
        )
    return table


@datasets_app.command("list")
def datasets_list() -> None:
    """List the shipped datasets.

    Example: consolidate datasets list
    """
    table = Table(title="Shipped datasets")
    table.add_column("name")
    table.add_column("default model")
    table.add_column("description")
    for name, text in catalog.DATASETS.items():
        table.add_row(name, catalog.DEFAULT_MODELS[name], text)
    console.print(table)


@datasets_app.command("show")
def datasets_show(
    name: Annotated[str, typer.Argument(help="A shipped dataset name or a dataset folder.")],
    model: ModelOpt = None,
) -> None:
    """Show counts and spend totals by nation, tier and category.

    Example: consolidate datasets show uk-councils
    """
    instance = catalog.load(name, model)
    spend = instance.spend.join(instance.bodies, on="body_id")
    console.print(
        f"[bold]{instance.name}[/bold]: {len(instance.bodies)} bodies, "
        f"{len(instance.sites)} candidate sites, {len(instance.categories)} categories, "
        f"GBP {spend['spend'].sum() / 1e9:,.2f}bn/yr spend"
    )
    groups = ["nation", "tier"] if "tier" in instance.bodies.columns else ["nation"]
    for key in [*groups, "category"]:
        console.print(_totals(spend, instance.bodies, key))


def _totals(spend: pd.DataFrame, bodies: pd.DataFrame, key: str) -> Table:
    table = Table(title=f"By {key}")
    table.add_column(key)
    table.add_column("bodies", justify="right")
    table.add_column("spend GBP m/yr", justify="right")
    sums = spend.groupby(key)["spend"].sum()
    counts = (
        bodies.groupby(key).size()
        if key in bodies.columns
        else spend.groupby(key)["body_id"].nunique()
    )
    for label in sorted(set(sums.index) | set(counts.index)):
        table.add_row(
            str(label), str(int(counts.get(label, 0))), f"{sums.get(label, 0.0) / 1e6:,.1f}"
        )
    return table


@datasets_app.command("export")
def datasets_export(
    name: Annotated[str, typer.Argument(help="A shipped dataset name.")],
    folder: Annotated[Path, typer.Argument(help="The folder to write (created if needed).")],
) -> None:
    """Write a shipped dataset as a folder in the public data contract.

    The generated network is written as edges.csv, so the copy gives exactly
    the same distances and can be edited and run as your own.

    Example: consolidate datasets export uk-councils my-councils/
    """
    if name not in catalog.DATASETS:
        raise DataValidationError(
            [f"(datasets export) | unknown dataset {name!r}; see 'consolidate datasets list'"]
        )
    instance = catalog.load(name)
    source = catalog.dataset_folder(name)
    writable_folder(folder, "FOLDER")
    for file in ("bodies.csv", "spend.csv", "sites.csv", "edges.csv"):
        if (source / file).exists():
            shutil.copyfile(source / file, folder / file)
    if not (folder / "edges.csv").exists():
        instance.edges.to_csv(folder / "edges.csv", index=False)
    console.print(f"wrote {name} to {folder}")


@datasets_app.command("synth")
def datasets_synth(
    folder: Annotated[Path, typer.Argument(help="The folder to write (created if needed).")],
    bodies: Annotated[int, typer.Option("--bodies", help="Number of bodies.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="The generator's seed.")] = 1,
    sites: Annotated[
        int | None,
        typer.Option(
            "--sites",
            help="Agencies may open only at the N largest bodies and any body they leave out"
            " of reach; the other bodies' sites are closed (default: at every body).",
        ),
    ] = None,
) -> None:
    """Write a seeded synthetic dataset of any size, with its model, for trials at scale.

    Example: consolidate datasets synth --bodies 5000 --sites 400 --seed 1 synth-5000/
    """
    from optimizer.synthetic import check_request, write_dataset

    check_request(bodies, seed, sites)
    write_dataset(writable_folder(folder, "FOLDER"), bodies, seed, sites)
    console.print(
        f"wrote {bodies} synthetic bodies to {folder}; run it with --data {folder}"
        f" --model {folder / 'model.toml'}"
    )


# ------------------------------------------------- export, plot and report of a run

RunDir = Annotated[Path, typer.Argument(help="A run folder written by 'consolidate curve --out'.")]
LevelOpt = Annotated[
    int | None,
    typer.Option("--level", help="A level of the run; default: the recommended level."),
]
OutFile = Annotated[Path, typer.Option("-o", "--output", help="The file to write.")]


class PlotKind(StrEnum):
    """What ``consolidate plot`` draws."""

    curve = "curve"
    breakdown = "breakdown"
    map = "map"


def _level_of(run: Run, level: int | None) -> int:
    chosen = run.recommended_level if level is None else level
    run.row(chosen)
    return chosen


@app.command("export")
def export_command(
    folder: RunDir,
    output: OutFile,
    level: LevelOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, xlsx, geojson or parquet; default: from -o's suffix."),
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            "--crs",
            help="GeoJSON from x_km,y_km data: the grid's EPSG code, e.g. EPSG:27700"
            " (uk-councils uses it without asking; lat,lon data needs none).",
        ),
    ] = None,
) -> None:
    """Write a level's grouping with names, km, band and the cost to serve each row.

    Example: consolidate export out/uk --level 50 --format xlsx -o level-50.xlsx
    """
    from optimizer.export import export_level

    run = open_run(folder)
    chosen = _level_of(run, level)
    rows = export_level(run, chosen, writable_file(output, "-o"), fmt, crs)
    console.print(f"wrote {output}: level {chosen}, {len(rows)} rows")


@app.command("plot")
def plot_command(
    folder: RunDir,
    output: OutFile,
    kind: Annotated[
        PlotKind, typer.Option("--kind", help="What to draw; map draws --level.")
    ] = PlotKind.curve,
    level: LevelOpt = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Map one category instead of main agencies.")
    ] = None,
) -> None:
    """Draw the curve, the cost breakdown or a map of one level (PNG, SVG or PDF).

    Example: consolidate plot out/uk --kind map --level 50 -o map-50.png
    """
    from optimizer import plot

    run = open_run(folder)
    if kind is PlotKind.curve:
        ax = plot.plot_curve(run.curve)
    elif kind is PlotKind.breakdown:
        ax = plot.plot_breakdown(run.curve)
    else:
        chosen = _level_of(run, level)
        opened = run.unlisted_sites(chosen)
        ax = plot.plot_map(
            run.instance, run.groupings(chosen), category=category, open_sites=opened
        )
    plot.save(ax, writable_file(output, "-o"))
    console.print(f"wrote {output}")


@app.command("report")
def report_command(
    folder: RunDir,
    output: OutFile,
    levels: Annotated[
        str | None,
        typer.Option(
            "--levels",
            help="Levels to map beside the status quo, e.g. 100,50; default: the recommended"
            " level and the level within 1% of it furthest from it in agencies (else the most"
            " consolidated level solved, or the next one up when that is the recommended one).",
        ),
    ] = None,
) -> None:
    """Write one self-contained HTML report of a run, ready to read or print.

    Example: consolidate report out/uk -o report.html
    """
    from optimizer.report import parse_levels_option, write_report

    run = open_run(folder)
    chosen = parse_levels_option(levels) if levels else None
    write_report(run, writable_file(output, "-o"), chosen)
    console.print(f"wrote {output}")


# ------------------------------------------------------------------------ sweeps


@app.command("sweep")
def sweep_command(
    grid: Annotated[
        Path, typer.Option("--grid", help="The sweep file (TOML): the data, levels, what to vary.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Sweep folder: sweep.csv, sweep.png, scenarios/.")
    ],
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the sweep in --out, skipping finished scenarios."),
    ] = False,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Solve one consolidation curve per scenario of a sweep file; tabulate and plot them.

    Example: consolidate sweep --grid models/sweep-example.toml --out out/sweep
    """
    from optimizer.sweep import load_sweep, run_sweep

    chosen = executor_options(executor, scheduler, workers)
    spec = load_sweep(grid)
    with _sweep_progress() as listen:
        table = run_sweep(spec, out, executor=chosen, resume=resume, on_scenario=listen)
    console.print(_sweep_table(table))
    written = [
        out / name for name in ("sweep.csv", "sweep.png", "scenarios") if (out / name).exists()
    ]
    console.print(f"wrote {', '.join(map(str, written))}")


@contextmanager
def _sweep_progress() -> Iterator[Callable[[Any, int, int], None]]:
    """A progress bar over the scenarios, shown once the sweep folder is checked."""
    progress = Progress(
        TextColumn("[bold]scenarios"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
    )
    task = progress.add_task("sweep", total=None)

    def listen(_scenario: Any, done: int, total: int) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=done, total=total)

    try:
        yield listen
    finally:
        if progress.live.is_started:
            progress.stop()


SWEEP_ROWS = 40


def _sweep_table(frame: pd.DataFrame) -> Table:
    from optimizer.sweep import parameter_columns, scenario_summary

    summary = scenario_summary(frame)
    scale, unit = (1e6, "GBP m") if frame["total"].max() >= 1e8 else (1e3, "GBP k")
    keys = [*parameter_columns(frame), "draw"]
    table = Table(title=f"Sweep: the recommended level of each scenario ({unit}/yr)")
    for column in ["scenario", *keys, "level", "savings", "savings %", "worst gap"]:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in summary.head(SWEEP_ROWS).to_dict("records"):
        table.add_row(
            str(row["scenario"]),
            *(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys),
            str(row["level"]),
            f"{row['savings'] / scale:,.1f}",
            f"{row['savings_pct']:.2f}",
            f"{row['worst_gap']:.1e}",
        )
    if len(summary) > SWEEP_ROWS:
        table.caption = f"{len(summary) - SWEEP_ROWS} more scenarios in sweep.csv"
    return table


def main() -> None:
    """Run the CLI, turning the project's errors into messages and exit codes."""
    debug = "--debug" in sys.argv
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except OptimizerError as err:
        if debug:
            raise
        code = {DataValidationError: 2, InfeasibleError: 3, SolverError: 4}
        errors.print(f"error: {err}", highlight=False, markup=False)
        sys.exit(next((c for t, c in code.items() if isinstance(err, t)), 1))
