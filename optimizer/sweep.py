"""Sweeps: one consolidation curve per scenario, over model parameters and spend draws.

A sweep file (TOML; unknown keys are errors, like a model file) says what to
solve and what to vary::

    [sweep]
    data = "uk-councils"       # a shipped dataset or a folder (relative to this file)
    model = "uk-default"       # a shipped model or a TOML file; default: the dataset's own
    levels = "default"         # as `consolidate curve --levels`, or a list of numbers
    time_limit = 10            # seconds per level; also gap, gap_abs, solver
    threads = 1                # solver threads per scenario (scenarios run side by side)

    [grid]                     # every combination of the listed values
    rate_scale = [0.5, 1.0]    # "what if discounts are half what we think?"
    spend_scale = [1.0, 1.2]   # "what if spend is 20% higher?"

    [grid.categories.ict]      # one category's own values
    desk_cost = [150000, 250000]

    [random]                   # a seeded sample, crossed with every grid setting
    samples = 4
    seed = 1
    radius_scale = { low = 0.8, high = 1.2 }   # uniform; a list is a uniform choice

    [draws]                    # Monte Carlo draws of spend for every setting
    count = 8
    seed = 1
    sigma_body = 0.10          # per body and category
    sigma_category = 0.05      # per category, shared by every body

A file that names no ``data`` and varies nothing (an empty one among them)
is refused. ``time_limit``, ``gap`` and ``threads`` follow the rules of
:func:`optimizer.solve.option_problems`.

Parameters: ``agency_fixed_cost`` (GBP/yr, in place of the model's),
``same_nation`` and ``split_categories`` (switches), and the multipliers
``fixed_cost_scale`` (every agency's fixed cost, ``sites.csv``'s too),
``desk_cost_scale``, ``distance_cost_scale``, ``radius_scale`` (finite radii),
``rate_scale`` (every band's discount rate) and ``spend_scale``. Under
``categories.NAME``: ``desk_cost``, ``distance_cost``, ``radius_km`` (``inf``
for none) and ``rate_scale``; the global multipliers apply on top.

Spend draws: draw ``d`` multiplies each body's spend in category ``c`` by
``exp(s_c Z_c - s_c^2/2) * exp(s_b Z_bc - s_b^2/2)`` with independent
standard normal ``Z`` (``s_c = sigma_category``, ``s_b = sigma_body``): a
log-normal factor of mean 1. Its generator is seeded by ``(seed, d)`` alone,
so draw ``d`` is the same for every setting (common random numbers) and any
executor. Without ``[draws]`` each setting is solved once on the spend as
given (``draw`` 0); with ``count = N`` the draws are 1..N.

Run folder ``DIR``: ``scenarios/<id>/`` holds each scenario's curve exactly as
``consolidate curve`` writes it plus ``scenario.json`` (written last: the
scenario is finished); ``sweep.csv`` the tidy table (one row per scenario
and level); ``sweep.json`` the scenarios and a fingerprint of the sweep file
and inputs, which ``resume`` must match; ``sweep.png`` the plot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from optimizer import catalog
from optimizer.curve import (
    EMPTY,
    CurveOptions,
    consolidation_curve,
    fingerprint,
    level_limit,
    parse_levels,
)
from optimizer.engine import versions
from optimizer.errors import DataValidationError
from optimizer.executors import ExecutorOptions, completed
from optimizer.instance import Instance
from optimizer.model import Band, Model
from optimizer.results import atomic_write_text, claim_folder, output_folder, write_json
from optimizer.schema import Problems, read_toml
from optimizer.solve import DEFAULT_GAP, SOLVERS, SolverOptions, option_problems

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SWITCHES = ("same_nation", "split_categories")
NUMBERS = (
    "agency_fixed_cost",
    "fixed_cost_scale",
    "desk_cost_scale",
    "distance_cost_scale",
    "radius_scale",
    "rate_scale",
    "spend_scale",
)
CATEGORY_NUMBERS = ("desk_cost", "distance_cost", "radius_km", "rate_scale")
POSITIVE = ("radius_scale", "spend_scale")
RESULT_COLUMNS = [
    "draw",
    "level",
    "total",
    "savings",
    "savings_pct",
    "lower_bound",
    "gap",
    "status",
    "status_quo",
    "seconds",
]
_SWEEP_KEYS = {
    "data",
    "model",
    "levels",
    "time_limit",
    "gap",
    "gap_abs",
    "solver",
    "threads",
    "description",
}
_TOP_KEYS = {"sweep", "grid", "random", "draws"}
_RANDOM_KEYS = {"samples", "seed"}
_DRAW_KEYS = {"count", "seed", "sigma_body", "sigma_category"}
_SOLVER_DEFAULTS = {"time_limit": 10.0, "gap": DEFAULT_GAP, "threads": 1, "gap_abs": 0.0}
BAND_SHARE = 20  # with at least this many draws the band is 5-95%, else min-max


@dataclass(frozen=True)
class Range:
    """A uniform range for a random parameter."""

    low: float
    high: float


@dataclass(frozen=True)
class Draws:
    """Monte Carlo draws of spend (see the module docstring for the distribution)."""

    count: int = 0
    seed: int = 0
    sigma_body: float = 0.1
    sigma_category: float = 0.05


@dataclass(frozen=True)
class Scenario:
    """One curve to solve: parameter values and a spend draw (0: spend as given)."""

    id: str
    parameters: Mapping[str, Any]
    draw: int


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file."""

    path: Path
    data: str
    model: str | None
    levels: str
    solver: SolverOptions
    grid: Mapping[str, list[Any]] = field(default_factory=dict)
    random: Mapping[str, list[Any] | Range] = field(default_factory=dict)
    samples: int = 0
    seed: int = 0
    draws: Draws = field(default_factory=Draws)
    digest: str = ""

    @property
    def parameters(self) -> list[str]:
        """The varied parameters: the grid's, then the random sample's."""
        return [*self.grid, *self.random]

    def scenarios(self) -> list[Scenario]:
        """Every grid setting, crossed with every random point, crossed with every draw.

        Examples
        --------
        >>> spec = SweepSpec(Path("s.toml"), "toy", None, "default", SolverOptions(),
        ...                  grid={"rate_scale": [0.5, 1.0]}, draws=Draws(count=2))
        >>> [(s.id, s.parameters["rate_scale"], s.draw) for s in spec.scenarios()]
        [('s001', 0.5, 1), ('s002', 0.5, 2), ('s003', 1.0, 1), ('s004', 1.0, 2)]
        """
        settings = [
            dict(zip(self.grid, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]
        points = _sample(self.random, self.samples, self.seed)
        draws = list(range(1, self.draws.count + 1)) or [0]
        combos = [({**a, **b}, d) for a, b, d in itertools.product(settings, points, draws)]
        width = max(3, len(str(len(combos))))
        return [Scenario(f"s{i:0{width}d}", p, d) for i, (p, d) in enumerate(combos, start=1)]


def _sample(
    random: Mapping[str, list[Any] | Range], samples: int, seed: int
) -> list[dict[str, Any]]:
    if not random:
        return [{}]
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(samples):
        point: dict[str, Any] = {}
        for key, spec in random.items():
            if isinstance(spec, Range):
                point[key] = float(rng.uniform(spec.low, spec.high))
            else:
                point[key] = spec[int(rng.integers(len(spec)))]
        points.append(point)
    return points


# ---------------------------------------------------------------- the sweep file


def load_sweep(path: Path | str) -> SweepSpec:
    """Read and validate a sweep file.

    Raises
    ------
    DataValidationError
        On a missing file, bad TOML, unknown keys or bad values, naming the file and key.
    """
    path = Path(path)
    name = path.name
    raw = read_toml(path, "sweep")
    problems = Problems()
    _unknown(raw, _TOP_KEYS, "", name, problems)
    head = _table(raw, "sweep", name, problems)
    _unknown(head, _SWEEP_KEYS, "sweep.", name, problems)
    grid = _parameters(_table(raw, "grid", name, problems), "grid", name, problems, set())
    random_raw = _table(raw, "random", name, problems)
    random = _parameters(random_raw, "random", name, problems, _RANDOM_KEYS)
    for key in sorted(set(grid) & set(random)):
        problems.add(name, None, f"random.{key}", "varied in [grid] already")
    draws = _draws(_table(raw, "draws", name, problems), name, problems)
    samples = _integer(random_raw.get("samples", 0), "random.samples", name, problems)
    if not (grid or random or draws.count or "data" in head):
        message = (
            "names no data and varies nothing: give sweep.data and [grid], [random] or"
            " [draws] (see models/sweep-example.toml)"
        )
        problems.add(name, None, None, message)
    if random and samples < 1:
        problems.add(
            name, None, "random.samples", "give at least 1 sample of the random parameters"
        )
    spec = SweepSpec(
        path=path,
        data=_where(path, head.get("data", "uk-councils"), "sweep.data", name, problems, True),
        model=_model(path, head.get("model"), name, problems),
        levels=_levels(head.get("levels", "default"), name, problems),
        solver=_solver(head, name, problems),
        grid=grid,
        random=random,
        samples=samples,
        seed=_integer(random_raw.get("seed", 0), "random.seed", name, problems),
        draws=draws,
        digest=hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest(),
    )
    problems.raise_if_any()
    return spec


def _unknown(raw: Mapping[str, Any], known: set[str], prefix: str, name: str, p: Problems) -> None:
    for key in sorted(set(raw) - known):
        p.add(name, None, f"{prefix}{key}", f"unknown key; expected one of {sorted(known)}")


def _table(raw: Mapping[str, Any], key: str, name: str, problems: Problems) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        problems.add(name, None, key, "expected a table")
        return {}
    return value


def _parameters(
    raw: dict[str, Any], table: str, name: str, problems: Problems, extra: set[str]
) -> dict[str, Any]:
    """The varied parameters of ``[grid]`` or ``[random]``, keyed by their column name."""
    _unknown(raw, {*SWITCHES, *NUMBERS, "categories", *extra}, f"{table}.", name, problems)
    flat = {k: v for k, v in raw.items() if k in SWITCHES or k in NUMBERS}
    categories = raw.get("categories", {})
    if not isinstance(categories, dict):
        problems.add(name, None, f"{table}.categories", "expected [categories.NAME] tables")
        categories = {}
    for cat, spec in categories.items():
        if not isinstance(spec, dict):
            problems.add(name, None, f"{table}.categories.{cat}", "expected a table")
            continue
        _unknown(spec, set(CATEGORY_NUMBERS), f"{table}.categories.{cat}.", name, problems)
        flat.update({f"categories.{cat}.{k}": v for k, v in spec.items() if k in CATEGORY_NUMBERS})
    return {key: _values(value, key, table, name, problems) for key, value in flat.items()}


def _values(value: Any, key: str, table: str, name: str, problems: Problems) -> Any:
    at = f"{table}.{key}"
    if table == "random" and isinstance(value, dict) and key.split(".")[-1] not in SWITCHES:
        return _range(value, key, at, name, problems)
    if not isinstance(value, list) or not value:
        shape = "a list of values or { low = ..., high = ... }" if table == "random" else "a list"
        problems.add(name, None, at, f"expected {shape}, got {value!r}")
        return []
    for item in value:
        _check_value(item, key, at, name, problems)
    return value


def _range(value: dict[str, Any], key: str, at: str, name: str, problems: Problems) -> Range:
    _unknown(value, {"low", "high"}, f"{at}.", name, problems)
    if "low" not in value or "high" not in value:
        problems.add(name, None, at, f"expected {{ low = ..., high = ... }}, got {value!r}")
        return Range(0.0, 0.0)
    low, high = value["low"], value["high"]
    if not (
        _check_value(low, key, f"{at}.low", name, problems)
        and _check_value(high, key, f"{at}.high", name, problems)
    ):
        return Range(0.0, 0.0)
    if high < low:
        problems.add(name, None, at, f"high {high!r} is below low {low!r}")
    return Range(float(low), float(high))


def _check_value(value: Any, key: str, at: str, name: str, problems: Problems) -> bool:
    leaf = key.split(".")[-1]
    if leaf in SWITCHES:
        if not isinstance(value, bool):
            problems.add(name, None, at, f"expected true or false, got {value!r}")
            return False
        return True
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        problems.add(name, None, at, f"expected a number, got {value!r}")
        return False
    if math.isinf(value) and leaf != "radius_km":
        problems.add(name, None, at, f"expected a finite number, got {value!r}")
        return False
    if value < 0 or (value == 0 and leaf in POSITIVE):
        bound = "> 0" if leaf in POSITIVE else ">= 0"
        problems.add(name, None, at, f"must be {bound}, got {value!r}")
        return False
    return True


def _integer(value: Any, at: str, name: str, problems: Problems) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(name, None, at, f"expected a whole number >= 0, got {value!r}")
        return 0
    return value


def _number(value: Any, at: str, name: str, problems: Problems) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        problems.add(name, None, at, f"expected a number >= 0, got {value!r}")
        return 0.0
    return float(value)


def _draws(raw: dict[str, Any], name: str, problems: Problems) -> Draws:
    _unknown(raw, _DRAW_KEYS, "draws.", name, problems)
    base = Draws()
    return Draws(
        count=_integer(raw.get("count", base.count), "draws.count", name, problems),
        seed=_integer(raw.get("seed", base.seed), "draws.seed", name, problems),
        sigma_body=_number(
            raw.get("sigma_body", base.sigma_body), "draws.sigma_body", name, problems
        ),
        sigma_category=_number(
            raw.get("sigma_category", base.sigma_category), "draws.sigma_category", name, problems
        ),
    )


def _where(path: Path, value: Any, at: str, name: str, problems: Problems, data: bool) -> str:
    """A shipped name as it is; a file or folder relative to the sweep file."""
    if not isinstance(value, str) or not value:
        problems.add(name, None, at, f"expected a name or a path, got {value!r}")
        return ""
    shipped = value in catalog.DATASETS if data else _is_model_name(value)
    return value if shipped else str(path.parent / value)


def _is_model_name(value: str) -> bool:
    return Path(value).suffix != ".toml" and len(Path(value).parts) == 1


def _model(path: Path, value: Any, name: str, problems: Problems) -> str | None:
    return None if value is None else _where(path, value, "sweep.model", name, problems, False)


def _levels(value: Any, name: str, problems: Problems) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(type(k) is int for k in value):
        return ",".join(str(k) for k in value)
    problems.add(name, None, "sweep.levels", f"expected a levels text or numbers, got {value!r}")
    return "default"


def _solver(head: dict[str, Any], name: str, problems: Problems) -> SolverOptions:
    solver = head.get("solver", "highs")
    if solver not in SOLVERS:
        problems.add(name, None, "sweep.solver", f"expected one of {list(SOLVERS)}, got {solver!r}")
        solver = "highs"
    limit, gap, threads, gap_abs = (head.get(k, d) for k, d in _SOLVER_DEFAULTS.items())
    found = option_problems(limit, gap, threads, gap_abs)
    for key, message in found:
        problems.add(name, None, f"sweep.{key}", message)
    if found:
        return SolverOptions(solver=solver)
    return SolverOptions(
        solver=solver,
        time_limit=float(limit),
        gap=float(gap),
        threads=threads,
        gap_abs=float(gap_abs),
    )


# --------------------------------------------------------------- the scenarios


def variant(base: Instance, scenario: Scenario, draws: Draws) -> Instance:
    """The base instance with a scenario's parameters and spend draw applied.

    Examples
    --------
    >>> import optimizer
    >>> toy = optimizer.load("toy")
    >>> half = variant(toy, Scenario("s1", {"rate_scale": 0.5}, 0), Draws())
    >>> [b.rate for b in half.model.categories["ict"].bands]
    [0.0, 0.1]
    """
    values = dict(scenario.parameters)
    model = _model_variant(base.model, values)
    sites = base.sites
    if "fixed_cost_scale" in values:
        sites = sites.assign(fixed_cost=sites["fixed_cost"] * values["fixed_cost_scale"])
    spend = base.spend.assign(spend=base.spend["spend"] * values.get("spend_scale", 1.0))
    if scenario.draw:
        spend = spend.assign(spend=spend["spend"] * _factors(spend, draws, scenario.draw))
    return dataclasses.replace(base, model=model, sites=sites, spend=spend)


def _model_variant(model: Model, values: dict[str, Any]) -> Model:
    scenario = {k: values[k] for k in SWITCHES if k in values}
    fixed = values.get("agency_fixed_cost", model.scenario.agency_fixed_cost)
    scenario["agency_fixed_cost"] = fixed * values.get("fixed_cost_scale", 1.0)
    model = model.with_scenario(**scenario)
    for cat, category in model.categories.items():
        own = {k: values.get(f"categories.{cat}.{k}") for k in CATEGORY_NUMBERS}
        changes = {
            k: own[k] if own[k] is not None else getattr(category, k)
            for k in ("desk_cost", "distance_cost", "radius_km")
        }
        radius = changes["radius_km"]
        if radius is not None and math.isfinite(radius):
            changes["radius_km"] = radius * values.get("radius_scale", 1.0)
        elif radius is not None:
            changes["radius_km"] = None
        changes["desk_cost"] *= values.get("desk_cost_scale", 1.0)
        changes["distance_cost"] *= values.get("distance_cost_scale", 1.0)
        rate = values.get("rate_scale", 1.0)
        rate *= own["rate_scale"] if own["rate_scale"] is not None else 1.0
        bands = tuple(Band(b.lower, b.upper, b.rate * rate) for b in category.bands)
        model = model.with_category(cat, bands=bands, **changes)
    return model


def _factors(spend: pd.DataFrame, draws: Draws, draw: int) -> np.ndarray:
    """The log-normal spend factors (mean 1) of one draw, one per spend row."""
    rng = np.random.default_rng([draws.seed, draw])
    cats = sorted(spend["category"].unique())
    shared = rng.standard_normal(len(cats))
    own = rng.standard_normal(len(spend))
    sc, sb = draws.sigma_category, draws.sigma_body
    per_cat = dict(zip(cats, np.exp(sc * shared - sc * sc / 2), strict=True))
    return np.asarray(spend["category"].map(per_cat), dtype=float) * np.exp(sb * own - sb * sb / 2)


def check_scenarios(spec: SweepSpec, base: Instance, scenarios: list[Scenario]) -> None:
    """Check every scenario against the model before anything is solved."""
    problems = Problems()
    name = spec.path.name
    for key in spec.parameters:
        parts = key.split(".")
        if parts[0] == "categories" and parts[1] not in base.model.categories:
            table = "grid" if key in spec.grid else "random"
            known = sorted(base.model.categories)
            problems.add(name, None, f"{table}.{key}", f"unknown category; the model has {known}")
    problems.raise_if_any()
    for scenario in scenarios:
        try:
            _model_variant(base.model, dict(scenario.parameters))
        except DataValidationError as err:
            setting = ", ".join(f"{k}={v}" for k, v in scenario.parameters.items())
            problems.lines.extend(
                f"({name}) | scenario {scenario.id} ({setting}) gives an invalid model: {line}"
                for line in err.problems
            )
    problems.raise_if_any()


# ------------------------------------------------------------------- running it


@dataclass(frozen=True)
class _Shared:
    """What every scenario task needs: the base instance, the curve options, the draws."""

    base: Instance
    options: CurveOptions
    draws: Draws


def _scenario_task(shared: _Shared, scenario: Scenario) -> dict[str, str]:
    """Solve one scenario's curve; return its run folder's files (relative path: text)."""
    instance = variant(shared.base, scenario, shared.draws)
    with tempfile.TemporaryDirectory(prefix="consolidate-sweep-") as tmp:
        folder = Path(tmp)
        consolidation_curve(instance, shared.options, folder)
        return {
            p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }


SweepListener = Callable[[Scenario | None, int, int], None]


def run_sweep(
    spec: SweepSpec | Path | str,
    out: Path,
    *,
    executor: ExecutorOptions | None = None,
    resume: bool = False,
    on_scenario: SweepListener | None = None,
) -> pd.DataFrame:
    """Solve every scenario's curve; write each as it finishes; return the tidy table.

    Parameters
    ----------
    spec : SweepSpec or path
        The sweep, or its TOML file.
    out : path
        The sweep folder (``sweep.csv``, ``sweep.json``, ``sweep.png``, ``scenarios/``).
    executor : ExecutorOptions, optional
        Where the scenarios are solved (each one whole, in one task); default:
        in this process, one after another. Results do not depend on it.
    resume : bool
        Continue the sweep in ``out``, skipping finished scenarios; refused
        when the sweep file or its inputs differ.
    on_scenario : callable, optional
        Called with (scenario, done, in all) after each scenario, and once
        with ``None`` when the folder is ready.

    Examples
    --------
    >>> import tempfile
    >>> spec = SweepSpec(Path("s.toml"), "toy", None, "6,3", SolverOptions(),
    ...                  grid={"rate_scale": [0.5, 1.0]})
    >>> frame = run_sweep(spec, Path(tempfile.mkdtemp()) / "sweep")
    >>> frame[["scenario", "rate_scale", "level"]].values.tolist()
    [['s001', 0.5, 6], ['s001', 0.5, 3], ['s002', 1.0, 6], ['s002', 1.0, 3]]
    >>> frame["total"].tolist()  # half the discounts cost GBP 8,500 more at level 3
    [506000.0, 475646.0, 506000.0, 467146.0]
    """
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    base = catalog.load(spec.data, spec.model)
    options = CurveOptions(levels=tuple(_parse_levels(spec, base)), solver=spec.solver)
    scenarios = spec.scenarios()
    check_scenarios(spec, base, scenarios)
    with output_folder(Path(out), "sweep"):
        return _run(spec, Path(out), base, options, executor, resume, on_scenario)


def _run(
    spec: SweepSpec,
    out: Path,
    base: Instance,
    options: CurveOptions,
    executor: ExecutorOptions | None,
    resume: bool,
    on_scenario: SweepListener | None,
) -> pd.DataFrame:
    """:func:`run_sweep` once its folder is held."""
    scenarios = spec.scenarios()
    done = _prepare(out, spec, base, options, scenarios, resume)
    frames = {s.id: _tidy(s, spec, *done[s.id]) for s in scenarios if s.id in done}
    todo = [s for s in scenarios if s.id not in done]
    if on_scenario is not None:
        on_scenario(None, len(frames), len(scenarios))
    shared = _Shared(base, options, spec.draws)
    with completed(_scenario_task, shared, todo, executor or ExecutorOptions("serial")) as results:
        for index, files in results:
            scenario = todo[index]
            _store(out / "scenarios" / scenario.id, scenario, files)
            frames[scenario.id] = _tidy(scenario, spec, files["curve.csv"], files["summary.json"])
            _write_table(out, frames, spec)
            if on_scenario is not None:
                on_scenario(scenario, len(frames), len(scenarios))
    table = _write_table(out, frames, spec)
    write_plot(table, out / "sweep.png")
    return table


def _parse_levels(spec: SweepSpec, base: Instance) -> list[int]:
    try:
        return parse_levels(spec.levels, len(base.bodies), most=level_limit(base))
    except DataValidationError as err:
        raise DataValidationError(
            [
                p.replace("(--levels)", f"({spec.path.name}, column 'sweep.levels')")
                for p in err.problems
            ]
        ) from None


def _prepare(
    out: Path,
    spec: SweepSpec,
    base: Instance,
    options: CurveOptions,
    scenarios: list[Scenario],
    resume: bool,
) -> dict[str, tuple[str, str]]:
    """Check or create the sweep folder; return finished scenarios' curve.csv and summary.json."""
    record = out / "sweep.json"
    stamp = {
        "sweep_file": spec.digest,
        "inputs": fingerprint(base, options),
        "scenarios": [
            {"scenario": s.id, "draw": s.draw, "parameters": dict(s.parameters)} for s in scenarios
        ],
    }
    if claim_folder(record, stamp, resume, "sweep", "the sweep file or its inputs"):
        write_json(record, {**stamp, "versions": versions()})
    done = {}
    for s in scenarios:
        folder = out / "scenarios" / s.id
        if (folder / "scenario.json").exists():
            done[s.id] = (
                (folder / "curve.csv").read_text(encoding="utf-8"),
                (folder / "summary.json").read_text(encoding="utf-8"),
            )
    return done


def _store(folder: Path, scenario: Scenario, files: dict[str, str]) -> None:
    """Write a finished scenario's run folder; ``scenario.json`` last marks it done."""
    if folder.exists():
        shutil.rmtree(folder)
    for relative, text in files.items():
        atomic_write_text(folder / relative, text)
    write_json(
        folder / "scenario.json",
        {"scenario": scenario.id, "draw": scenario.draw, "parameters": dict(scenario.parameters)},
    )


def _tidy(scenario: Scenario, spec: SweepSpec, curve_csv: str, summary: str) -> pd.DataFrame:
    """A scenario's rows of the tidy table."""
    frame = pd.read_csv(io.StringIO(curve_csv))
    frame["status_quo"] = json.loads(summary)["status_quo_total"]
    frame["draw"] = scenario.draw
    frame.insert(0, "scenario", scenario.id)
    for i, key in enumerate(spec.parameters, start=1):
        frame.insert(i, key, scenario.parameters[key])
    return frame[["scenario", *spec.parameters, *RESULT_COLUMNS]]


def _write_table(out: Path, frames: dict[str, pd.DataFrame], spec: SweepSpec) -> pd.DataFrame:
    columns = ["scenario", *spec.parameters, *RESULT_COLUMNS]
    parts = [frames[k] for k in sorted(frames)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    atomic_write_text(out / "sweep.csv", table.to_csv(index=False, lineterminator="\n"))
    return table


# ---------------------------------------------------------------------- the plot


def parameter_columns(frame: pd.DataFrame) -> list[str]:
    """The varied parameters' columns of a tidy sweep table."""
    return [c for c in frame.columns if c != "scenario" and c not in RESULT_COLUMNS]


def band(values: pd.Series) -> tuple[float, float, float]:
    """Median and band of a level's totals across draws: 5-95% from 20 draws, else min-max.

    Examples
    --------
    >>> band(pd.Series([1.0, 2.0, 4.0]))
    (2.0, 1.0, 4.0)
    """
    if len(values) >= BAND_SHARE:
        low, high = values.quantile(0.05), values.quantile(0.95)
    else:
        low, high = values.min(), values.max()
    return float(values.median()), float(low), float(high)


def plot_sweep(frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Median total against the number of agencies, one line per parameter setting.

    The shaded band spans the spend draws: min to max, or 5% to 95% with 20
    draws or more. Levels without a grouping are left out.

    Examples
    --------
    >>> frame = pd.DataFrame({"scenario": ["s1", "s1", "s2", "s2"], "rate_scale": [1, 1, 1, 1],
    ...     "draw": [1, 1, 2, 2], "level": [6, 3, 6, 3], "total": [5e5, 4.6e5, 5.1e5, 4.7e5],
    ...     "status": ["optimal"] * 4})
    >>> plot_sweep(frame).get_ylabel()
    'total cost, GBP k/yr'
    """
    from optimizer.plot import PALETTE, money_unit, new_axes

    ax = ax if ax is not None else new_axes()
    solved = frame[~frame["status"].isin(EMPTY) & frame["total"].notna()]
    if solved.empty:
        raise DataValidationError(["(sweep.csv) | no level has a grouping to plot"])
    scale, unit = money_unit(float(solved["total"].max()))
    keys = parameter_columns(frame)
    groups = solved.groupby(keys, sort=False, dropna=False) if keys else [((), solved)]
    for i, (values, rows) in enumerate(groups):
        stats = rows.groupby("level")["total"].apply(band).sort_index(ascending=False)
        levels = stats.index.to_numpy(dtype=float)
        median, low, high = (np.array([s[j] for s in stats]) / scale for j in range(3))
        colour = PALETTE[i % len(PALETTE)]
        ax.fill_between(levels, low, high, color=colour, alpha=0.18, lw=0)
        ax.plot(levels, median, "o-", color=colour, ms=3, lw=1.5, label=_label(keys, values))
    _level_ticks(ax, sorted(int(k) for k in solved["level"].unique()))
    ax.set_ylabel(f"total cost, {unit}/yr")
    ax.grid(True, which="major", alpha=0.3)
    if keys and len(ax.lines) <= len(PALETTE):
        ax.legend(fontsize=7, frameon=False)
    draws = int(frame["draw"].nunique())
    ax.set_title(
        f"Sweep: median over {draws} spend draw{'s' if draws != 1 else ''},"
        f" band {'5-95%' if draws >= BAND_SHARE else 'min-max'}",
        loc="left",
        fontweight="bold",
    )
    return ax


def _level_ticks(ax: Axes, levels: list[int]) -> None:
    """Levels on a log scale, most agencies on the left, ticked as plain numbers."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    many = len(levels) > 16
    shown = sorted({round(v) for v in np.geomspace(levels[0], levels[-1], 12)}) if many else levels
    ax.set_xticks([float(k) for k in shown])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if levels[-1] > levels[0]:
        ax.set_xlim(levels[-1] * 1.1, levels[0] / 1.1)
    ax.set_xlabel("number of purchasers (agencies)")


def _label(keys: list[str], values: Any) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(
        f"{k.removeprefix('categories.')}={_short(v)}" for k, v in zip(keys, values, strict=True)
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_plot(frame: pd.DataFrame, path: Path) -> None:
    """Write :func:`plot_sweep` of the table as an image (png, svg or pdf); skip an empty table."""
    from optimizer.plot import save

    if frame.empty or frame["total"].notna().sum() == 0:
        return
    save(plot_sweep(frame), path)


def scenario_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario: its recommended level (lowest total), savings and worst gap.

    Examples
    --------
    >>> frame = pd.DataFrame({"scenario": ["s1", "s1"], "draw": [0, 0], "level": [6, 3],
    ...     "total": [5e5, 4.6e5], "savings": [0.0, 4e4], "savings_pct": [0.0, 8.0],
    ...     "gap": [0.0, 1e-5], "status": ["optimal"] * 2})
    >>> scenario_summary(frame)[["scenario", "level", "savings", "worst_gap"]].values.tolist()
    [['s1', 3, 40000.0, 1e-05]]
    """
    keys = ["scenario", *parameter_columns(frame), "draw"]
    solved = frame[~frame["status"].isin(EMPTY) & frame["total"].notna()]
    best = solved.sort_values(["total", "level"]).groupby("scenario", sort=False).head(1)
    best = best.set_index("scenario")
    worst = solved.groupby("scenario")["gap"].max().rename("worst_gap")
    table = best[[c for c in keys if c != "scenario"] + ["level", "savings", "savings_pct"]]
    return table.join(worst).reset_index().sort_values("scenario").reset_index(drop=True)
